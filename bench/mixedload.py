"""A mixed workload of reads and writes from many client threads, in its own process.

``python -m bench.mixedload --target HOST:PORT --threads 10 --duration 60 --models 10
--versions 5`` runs ``threads`` closed loops over one channel; each call is one of
:data:`MIX` (chosen at random by weight) on models ``mix-0`` … (prepared by
:func:`prepare`: each with ``versions`` sealed versions). Prints one JSON object:
``{"seconds", "latencies_ms": {method: [...]}, "errors": {method: {code: n}}}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from modelregistry.client import RegistryClient, channel_options
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry.v1 import resources_pb2 as res

# (method, weight): reads dominate, every kind of write is represented.
MIX: tuple[tuple[str, int], ...] = (
    ("GetModel", 20),
    ("GetModelVersion", 25),
    ("ListModelVersions", 10),
    ("UpdateModel", 10),
    ("UpdateModelVersion", 15),
    ("SetAlias", 10),
    ("CreateModelVersion", 10),
)
WRITES = frozenset({"UpdateModel", "UpdateModelVersion", "SetAlias", "CreateModelVersion"})


def prepare(target: str, models: int, versions: int) -> None:
    """Models ``mix-0`` … with ``versions`` sealed versions each."""
    with RegistryClient(target, timeout=60) as client:
        for m in range(models):
            client.create_model(f"mix-{m}")
            for _ in range(versions):
                v = client.create_version(f"mix-{m}", labels={"run": "0"}, metrics={"auc": 0.9})
                client.seal_version(f"mix-{m}", v.version_number)


def _calls(
    stub: mr_grpc.ModelRegistryStub, rng: random.Random, models: int, versions: int
) -> dict[str, Callable[[], object]]:
    def model() -> str:
        return f"models/mix-{rng.randrange(models)}"

    def version() -> str:
        return f"{model()}/versions/{rng.randrange(versions) + 1}"

    def mask(*paths: str) -> field_mask_pb2.FieldMask:
        return field_mask_pb2.FieldMask(paths=list(paths))

    t = 30.0
    return {
        "GetModel": lambda: stub.GetModel(mr.GetModelRequest(name=model()), timeout=t),
        "GetModelVersion": lambda: stub.GetModelVersion(
            mr.GetModelVersionRequest(name=version()), timeout=t
        ),
        "ListModelVersions": lambda: stub.ListModelVersions(
            mr.ListModelVersionsRequest(parent=model(), page_size=20), timeout=t
        ),
        "UpdateModel": lambda: stub.UpdateModel(
            mr.UpdateModelRequest(
                model=res.Model(name=model(), description=f"d{rng.random()}"),
                update_mask=mask("description"),
            ),
            timeout=t,
        ),
        "UpdateModelVersion": lambda: stub.UpdateModelVersion(
            mr.UpdateModelVersionRequest(
                model_version=res.ModelVersion(name=version(), labels={"run": str(rng.random())}),
                update_mask=mask("labels.run"),
            ),
            timeout=t,
        ),
        "SetAlias": lambda: _set_alias(stub, rng, models, versions, t),
        "CreateModelVersion": lambda: stub.CreateModelVersion(
            mr.CreateModelVersionRequest(parent=model(), model_version=res.ModelVersion()),
            timeout=t,
        ),
    }


def _set_alias(
    stub: mr_grpc.ModelRegistryStub, rng: random.Random, models: int, versions: int, t: float
) -> object:
    m = f"models/mix-{rng.randrange(models)}"
    alias = res.Alias(
        name=f"{m}/aliases/a{rng.randrange(3)}",
        version=f"{m}/versions/{rng.randrange(versions) + 1}",
    )
    return stub.SetAlias(mr.SetAliasRequest(alias=alias), timeout=t)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workload and print the JSON result."""
    p = argparse.ArgumentParser(prog="python -m bench.mixedload")
    p.add_argument("--target", required=True)
    p.add_argument("--threads", type=int, default=10)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--models", type=int, default=10)
    p.add_argument("--versions", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    channel = grpc.insecure_channel(args.target, options=channel_options(retries=0))
    stub = mr_grpc.ModelRegistryStub(channel)
    methods = [m for m, _ in MIX]
    weights = [w for _, w in MIX]
    lock = threading.Lock()
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    t0 = time.perf_counter()
    record_from = t0 + args.warmup
    stop_at = record_from + args.duration

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        calls = _calls(stub, rng, args.models, args.versions)
        while (start := time.perf_counter()) < stop_at:
            method = rng.choices(methods, weights)[0]
            code = ""
            try:
                calls[method]()
            except grpc.RpcError as exc:
                code = exc.code().name  # type: ignore[attr-defined]
            end = time.perf_counter()
            if start >= record_from:
                with lock:
                    if code:
                        errors[method][code] += 1
                    else:
                        latencies[method].append(round((end - start) * 1000, 3))

    threads = [
        threading.Thread(target=worker, args=(args.seed * 1000 + i,), daemon=True)
        for i in range(args.threads)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    channel.close()
    result: dict[str, Any] = {
        "seconds": args.duration,
        "latencies_ms": dict(latencies),
        "errors": {m: dict(c) for m, c in errors.items()},
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
