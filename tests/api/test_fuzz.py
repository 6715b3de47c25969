"""Descriptor-driven fuzzing of every RPC of every served service (app.SERVICES).

For each method found in the service descriptors (so RPCs added later are fuzzed too), a
seeded generator sends random messages, mutated valid messages and random bytes, as raw bytes
so that undecodable requests reach the server as well. The rules: no call ends INTERNAL or
UNKNOWN, the server keeps answering, and a rejected call changes nothing a client can see.

Bounded: ``FUZZ_CASES`` calls per method (env ``MODELREGISTRY_FUZZ_CASES`` raises it for a
longer run, ``MODELREGISTRY_FUZZ_SEED`` picks the seed) and ``FUZZ_BUDGET_S`` seconds overall,
shared equally by the methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import RegistryClient, RegistryError
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server import app
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.fuzz import MessageFuzzer, message_class
from tests.support.recording import Recorder

FUZZ_CASES = int(os.environ.get("MODELREGISTRY_FUZZ_CASES", "40"))
FUZZ_SEED = int(os.environ.get("MODELREGISTRY_FUZZ_SEED", "20261201"))
FUZZ_BUDGET_S = 240.0
CALL_TIMEOUT_S = 20.0
# A watch never ends by itself: it is read for this long, and ending by its deadline is fine.
WATCH_S = 0.5

SERVICES: tuple[ServiceDescriptor, ...] = app.SERVICES
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)

# Names of what the seeded registry holds, so generated requests get past name parsing.
NAMES = (
    "m1",
    "m2",
    "prod",
    "payload",
    "up-1",
    "models/m1",
    "models/m2",
    "models/m1/versions/1",
    "models/m1/versions/2",
    "models/m1/versions/latest",
    "models/m1/versions/prod",
    "models/m1/aliases/prod",
    "models/m1/aliases/next",
    "models/m1/versions/1/files/payload",
    "models/m1/versions/2/files/payload",
    "models/m1/versions/2/files/new.bin",
    "models/m1/versions/prod/files/payload",
    "fuzz",
    "webhooks/fuzz",
    "webhooks/fuzz/deliveries/00000000000000000000000000000000",
    "https://hooks.example/fuzz",
)


def all_methods() -> list[tuple[ServiceDescriptor, MethodDescriptor]]:
    return [(s, m) for s in SERVICES for m in s.methods]


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str


def _seed(address: str) -> dict[str, list[list[Message]]]:
    """Fill the registry through a recording client; every RPC is called at least once."""
    recorder = Recorder()
    with grpc.intercept_channel(grpc.insecure_channel(address), recorder) as channel:
        client = RegistryClient(channel=channel, retries=0)
        client.create_model("m1", labels={"team": "risk"}, description="fuzzed")
        client.create_model("m2")
        client.create_model("m3")
        client.create_version(
            "m1",
            metrics={"auc": 0.9},
            parameters={"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam"}},
            inputs=[{"name": "x", "type": "float32[3]", "value": 1.5}],
            outputs=["y"],
            dependencies=["torch"],
            source=("https://git.example/m1", "3f2a1c", "train.py"),
            datasets=[("gs://data/m1", "sha256:ab", "TRAINING")],
            labels={"team": "risk"},
        )
        client.upload_file("m1", 1, io.BytesIO(b"hello fuzz"), upload_id="up-1")
        client.get_upload_status("up-1")
        client.list_uploads_page("m1", 1, filter='state = "COMMITTED"', page_size=1)
        client.seal_version("m1", 1)
        client.set_alias("m1", "prod", 1)
        client.get_alias("m1", "prod")
        client.list_aliases("m1")
        client.set_alias("m1", "next", 1)
        client.delete_alias("m1", "next")
        client.transition_stage("m1", 1, "STAGING", comment="fuzz")
        list(client.list_stage_transitions("m1", 1, page_size=1))
        draft = client.create_version("m1", labels={"draft": "yes"}, parameters={"a": 1})
        draft.parameters["b"] = "two"
        client.update_version(draft, update_mask=["parameters", "labels"])
        client.upload_file("m1", 2, io.BytesIO(b"x" * 100), file_id="new.bin")
        client.upload_file("m1", 2, io.BytesIO(b"y" * 10), file_id="payload")
        list(client.list_files("m1", 2, page_size=1))
        client.get_file("m1", 1)
        b"".join(client.iter_file("m1", "prod"))
        client.get_model("m1")
        model = client.get_model("m2")
        model.labels["k"] = "v"
        client.update_model(model, update_mask=["labels"])
        list(
            client.list_models(filter='labels.team = "risk"', order_by="model_id desc", page_size=1)
        )
        client.get_version("m1", "latest")
        list(
            client.list_versions(
                "m1", filter="metrics.auc > 0.5", order_by="metrics.auc desc", page_size=1
            )
        )
        list(client.list_versions("-", page_size=1))
        client.create_version("m3")
        client.delete_version("m3", 1)
        client.undelete_version("m3", 1)
        client.delete_model("m3", force=True)
        client.undelete_model("m3")
        with contextlib.suppress(RegistryError):
            client.cancel_upload("up-1")
        client.get_caller()
        key = client.create_api_key("fuzz", scopes=["registry.read"]).api_key
        client.create_api_key("kept", scopes=["registry.admin"])
        list(client.list_api_keys(page_size=1))
        client.revoke_api_key(key.name)
        list(client.list_events(filter='resource = "models/m1*"', page_size=1))
        client.verify_events()
        watch = client.watch_events(filter='method = "SetAlias"', after_cursor="events/0")
        next(watch)
        watch.close()
        list(client.list_alias_history("m1", "prod", page_size=1))
        client.get_alias("m1", "prod", read_time=datetime.now(UTC))
        client.get_version("m1", "prod", read_time=datetime.now(UTC))
        hook = client.create_webhook(
            "fuzz", "https://hooks.example/fuzz", filter="kind = CHANGE", enabled=False
        ).webhook
        client.get_webhook("fuzz")
        list(client.list_webhooks(page_size=1))
        hook.description = "fuzzed"
        client.update_webhook(hook, update_mask=["description"])
        client.rotate_webhook_secret("fuzz")
        list(client.list_webhook_deliveries("fuzz", page_size=1))
        with contextlib.suppress(RegistryError):
            client.resend_webhook_delivery("webhooks/fuzz/deliveries/" + "0" * 32)
        client.create_webhook("gone", "https://hooks.example/gone", enabled=False)
        client.delete_webhook("gone")
        client.close()
    return recorder.corpus


def _state(client: RegistryClient) -> tuple[list[res.Model], list[res.ModelVersion], list[Any]]:
    """What a client sees (etags change with every write, aliases ride on versions)."""
    models = client.list_models_page(show_deleted=True, page_size=1000).models
    versions = client.list_versions_page("-", show_deleted=True, page_size=1000).model_versions
    keys = client.list_api_keys_page(page_size=1000).api_keys
    return list(models), list(versions), list(keys)


class Caller:
    """Calls one method with raw request bytes and reports the status."""

    def __init__(self, channel: grpc.Channel, service: ServiceDescriptor, method: MethodDescriptor):
        path = f"/{service.full_name}/{method.name}"
        self.method = method
        if method.client_streaming and method.server_streaming:
            self._call = channel.stream_stream(path)
        elif method.client_streaming:
            self._call = channel.stream_unary(path)
        elif method.server_streaming:
            self._call = channel.unary_stream(path)
        else:
            self._call = channel.unary_unary(path)

    def __call__(self, requests: list[bytes]) -> Outcome:
        m = self.method
        try:
            watch = m.name.startswith("Watch")
            timeout = WATCH_S if watch else CALL_TIMEOUT_S
            if m.client_streaming:
                result = self._call(iter(requests), timeout=timeout)
            else:
                result = self._call(requests[0], timeout=timeout)
            if m.server_streaming:
                for _ in result:
                    pass
        except grpc.RpcError as err:
            if watch and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(grpc.StatusCode.OK, "")
            return Outcome(err.code(), err.details() or "")
        return Outcome(grpc.StatusCode.OK, "")


def _cases(
    fuzzer: MessageFuzzer,
    rng: random.Random,
    method: MethodDescriptor,
    corpus: list[list[Message]],
) -> Iterator[list[bytes]]:
    """Request lists for one method: recorded requests with one edge case or flipped bytes,
    generated messages, and random bytes."""
    descriptor = method.input_type

    def one() -> bytes:
        roll = rng.random()
        if roll < 0.3:  # plausible but for one edge case
            return fuzzer.one_edge_case(descriptor).SerializeToString()
        if roll < 0.6:
            return fuzzer.message(descriptor).SerializeToString()
        if roll < 0.8:
            plausible = fuzzer.message(descriptor, fill=0.8, nasty=0.05)
            return fuzzer.mutate(plausible.SerializeToString())
        return fuzzer.raw()

    for _ in range(FUZZ_CASES):
        if corpus and rng.random() < 0.6:  # a real request, changed in one place
            seed = [m.SerializeToString() for m in rng.choice(corpus)]
            i = rng.randrange(len(seed))
            if rng.random() < 0.7:
                message = message_class(descriptor).FromString(seed[i])
                seed[i] = fuzzer.perturb(message).SerializeToString()
            else:
                seed[i] = fuzzer.mutate(seed[i])
            yield seed
            continue
        count = rng.randint(1, 4) if method.client_streaming else 1
        yield [one() for _ in range(count)]


@pytest.fixture
def server_config(server_config: Config) -> Config:
    """No webhook deliveries: a fuzzed webhook may name any https host."""
    return dataclasses.replace(server_config, webhook_workers=0)


@pytest.fixture
def fuzz_channel(server: RegistryServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def test_fuzz_every_rpc(
    server: RegistryServer, client: RegistryClient, fuzz_channel: grpc.Channel
) -> None:
    corpus = _seed(server.address)
    rng = random.Random(FUZZ_SEED)
    fuzzer = MessageFuzzer(rng, NAMES)
    methods = all_methods()
    share = FUZZ_BUDGET_S / len(methods)  # every method gets its part of the time budget
    failures: list[str] = []
    seen: dict[str, set[grpc.StatusCode]] = {}
    before = _state(client)
    for service, method in methods:
        caller = Caller(fuzz_channel, service, method)
        deadline = time.monotonic() + share
        for requests in _cases(fuzzer, rng, method, corpus.get(method.name, [])):
            if time.monotonic() > deadline:
                break
            outcome = caller(requests)
            seen.setdefault(method.name, set()).add(outcome.code)
            if outcome.code in BAD_CODES:
                failures.append(
                    f"{method.name}: {outcome.code.name} {outcome.details!r} "
                    f"for {[r.hex() for r in requests]}"
                )
            after = _state(client)
            if outcome.code != grpc.StatusCode.OK and after != before:
                failures.append(
                    f"{method.name}: rejected with {outcome.code.name} "
                    f"({outcome.details!r}) but changed the registry: "
                    f"{[r.hex() for r in requests]}"
                )
            before = after
    health = health_pb2_grpc.HealthStub(fuzz_channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert client.get_model("m1").name == "models/m1"
    assert server.audit.verify_tenant("default").ok  # every call left the chain intact
    assert not failures, "\n".join(failures[:40])
    # Every method of the descriptors was called, and requests reached the use cases.
    assert set(seen) == {m.name for _, m in methods}
    assert sum(grpc.StatusCode.OK in codes for codes in seen.values()) >= len(methods) // 3
