"""AccessService servicer: API keys and who the caller is."""

from __future__ import annotations

import grpc

from modelregistry.v1 import access_pb2 as pb
from modelregistry.v1 import access_pb2_grpc as pb_grpc

from ..domain.api_keys import ApiKeys, parse_api_key_name
from ..domain.errors import InvalidArgument
from . import access_converters as conv
from .callers import caller_of

Ctx = grpc.ServicerContext


class AccessServicer(pb_grpc.AccessServiceServicer):
    """The AccessService."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Ctx
    ) -> pb.CreateApiKeyResponse:
        if not request.HasField("api_key"):
            raise InvalidArgument.field("api_key", "is required")
        key = request.api_key
        created = self._keys.create(
            caller_of(context), key.display_name, key.scopes, conv.expire_time_of(key)
        )
        return pb.CreateApiKeyResponse(
            api_key=conv.api_key_to_proto(created.key), secret=created.credential
        )

    def ListApiKeys(self, request: pb.ListApiKeysRequest, context: Ctx) -> pb.ListApiKeysResponse:
        keys, token = self._keys.list_keys(
            caller_of(context), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListApiKeysResponse(
            api_keys=[conv.api_key_to_proto(k) for k in keys], next_page_token=token
        )

    def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: Ctx) -> pb.ApiKey:
        key_id = parse_api_key_name(request.name)
        return conv.api_key_to_proto(self._keys.revoke(caller_of(context), key_id))

    def GetCaller(self, request: pb.GetCallerRequest, context: Ctx) -> pb.Caller:
        return conv.caller_to_proto(caller_of(context))
