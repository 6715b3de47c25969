"""Helpers of the ModelRegistry API tests: error expectations and whole-registry snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from modelregistry.client import DOMAIN, RegistryClient, RegistryError, from_rpc_error
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry.v1 import resources_pb2 as res


class Caught:
    """The error :func:`expect_error` caught (``.value``), like ``pytest.ExceptionInfo``."""

    value: RegistryError


@contextmanager
def expect_error(
    cls: type[RegistryError],
    reason: str,
    *,
    field: str | None = None,
    message: str = "",
    case: object = None,
) -> Iterator[Caught]:
    """The block raises ``cls`` with ``reason`` (domain modelregistry.v1), naming ``field`` in
    its BadRequest violations and containing ``message`` in its text, if given. ``case``
    labels failures when one test loops over many inputs."""
    label = "" if case is None else f"case {case!r}: "
    caught = Caught()
    try:
        yield caught
    except cls as err:
        caught.value = err
    except Exception as err:
        err.add_note(f"{label}expected {cls.__name__} {reason}")
        raise
    else:
        pytest.fail(f"{label}{cls.__name__} ({reason}) was not raised")
    err = caught.value
    assert err.reason == reason, label + repr(err)
    assert err.domain == DOMAIN, label + repr(err)
    if field is not None:
        assert field in [f for f, _ in err.field_violations], label + repr(err)
    assert message in err.message, label + repr(err)


@dataclass(frozen=True)
class Snapshot:
    """Everything the registry shows: models, versions (deleted too), aliases, stage history."""

    models: list[res.Model]
    versions: list[res.ModelVersion]
    aliases: dict[str, list[res.Alias]]
    transitions: dict[str, list[res.StageTransition]]


def snapshot(client: RegistryClient) -> Snapshot:
    """Read the whole (small) registry."""
    models = list(client.list_models(show_deleted=True, page_size=1000))
    versions = list(client.list_versions("-", show_deleted=True, page_size=1000))
    return Snapshot(
        models=models,
        versions=versions,
        aliases={m.name: client.list_aliases(m.name) for m in models},
        transitions={v.name: list(client.list_stage_transitions("", v.name)) for v in versions},
    )


@contextmanager
def unchanged(client: RegistryClient) -> Iterator[Snapshot]:
    """Assert that nothing visible changed while the block ran (use around failing calls)."""
    before = snapshot(client)
    yield before
    after = snapshot(client)
    assert after.models == before.models
    assert after.versions == before.versions
    assert after.aliases == before.aliases
    assert after.transitions == before.transitions


def ready_version(client: RegistryClient, model_id: str, **fields: Any) -> res.ModelVersion:
    """Create a version and seal it (READY, no files)."""
    created = client.create_version(model_id, **fields)
    return client.seal_version(model_id, created.version_number)


def call(client: RegistryClient, method: str, request: Message) -> Any:
    """Call a ModelRegistry method with a hand-built request (what the client cannot send);
    failures raise the client's typed errors."""
    stub = mr_grpc.ModelRegistryStub(client.channel)
    try:
        return getattr(stub, method)(request, timeout=30)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from e
