"""API keys and who-am-I, through ``modelregistry.v1.AccessService``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf import timestamp_pb2

from modelregistry.client.calls import Invoker
from modelregistry.client.pager import Pager, pager
from modelregistry.v1 import access_pb2 as ac
from modelregistry.v1 import access_pb2_grpc as ac_grpc

__all__ = ["Access", "api_key_name"]


def api_key_name(key_id_or_name: str) -> str:
    """``apiKeys/{key_id}`` for a key id (a name is returned as it is)."""
    return key_id_or_name if "/" in key_id_or_name else f"apiKeys/{key_id_or_name}"


class Access:
    """The AccessService calls of :class:`~modelregistry.client.RegistryClient`."""

    def __init__(self, call: Invoker, stub: ac_grpc.AccessServiceStub) -> None:
        self._call = call
        self._stub = stub

    def create_api_key(
        self,
        display_name: str,
        *,
        scopes: Iterable[str],
        expire_time: datetime | timestamp_pb2.Timestamp | None = None,
    ) -> ac.CreateApiKeyResponse:
        """A new key (``.api_key``) and its credential (``.secret``), shown only now."""
        key = ac.ApiKey(display_name=display_name, scopes=list(scopes))
        if isinstance(expire_time, datetime):
            key.expire_time.FromDatetime(expire_time)
        elif expire_time is not None:
            key.expire_time.CopyFrom(expire_time)
        return self._call(self._stub.CreateApiKey, ac.CreateApiKeyRequest(api_key=key))

    def list_api_keys_page(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> ac.ListApiKeysResponse:
        """One page of the tenant's keys, with its ``next_page_token``."""
        request = ac.ListApiKeysRequest(page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListApiKeys, request)

    def list_api_keys(self, *, page_size: int = 0) -> Pager[ac.ApiKey]:
        """Every key of the tenant (no secrets), oldest first, fetching pages lazily."""
        return pager(
            lambda request: self._call(self._stub.ListApiKeys, request),
            ac.ListApiKeysRequest(page_size=page_size),
            lambda page: page.api_keys,
        )

    def revoke_api_key(self, key_id_or_name: str) -> ac.ApiKey:
        """Revoke a key (by id or ``apiKeys/{id}``); revoking it again returns it unchanged."""
        request = ac.RevokeApiKeyRequest(name=api_key_name(key_id_or_name))
        return self._call(self._stub.RevokeApiKey, request)

    def get_caller(self) -> ac.Caller:
        """Who the server says this client is (actor, tenant, scopes, groups, API key id)."""
        return self._call(self._stub.GetCaller, ac.GetCallerRequest())
