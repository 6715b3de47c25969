"""Rows and index sizes per table on PostgreSQL, for the sizing plan in docs/scaling.md.

Seeds a throw-away PostgreSQL cluster (initdb in a temporary directory, loopback, removed
afterwards) through the metadata store, the same calls the use cases make: ``--models``
models of ``--versions-per-model`` READY versions, each with 4 labels, 5 metrics, a source,
2 datasets, one producing run, 2 inputs and outputs, and 3 files (a 100 MB model with block
sums, two small JSON files; every file its own blob), plus the events a real version writes
(create, 3 files, seal: 5 per version) and an alias move per 50 versions. Then ``VACUUM
ANALYZE`` and prints, per table, rows, heap (with TOAST) and index bytes and bytes per row, and
the totals per version.

    .venv/bin/python scripts/measure_sizes.py [--models 100] [--versions-per-model 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelregistry_server.domain.entities import (
    Alias,
    AliasMove,
    BlockSums,
    DatasetRef,
    DatasetRole,
    FileRecord,
    Model,
    ModelVersion,
    SourceCode,
    Variable,
    VersionState,
)
from modelregistry_server.domain.events import Event
from modelregistry_server.storage.metadata import open_metadata_store
from tests.support.postgres import running_cluster

MODEL_BYTES = 100_000_000  # 1 PB / 10 million versions
BLOCK = 1 << 20


def _version(
    tenant: str, model_id: str, number: int, when: datetime, rnd: random.Random
) -> ModelVersion:
    run = f"runs/{uuid.UUID(int=rnd.getrandbits(128)).hex}"
    return ModelVersion(
        tenant=tenant,
        model_id=model_id,
        number=number,
        uid=str(uuid.uuid4()),
        create_time=when,
        update_time=when,
        description="nightly retrain on the latest labelled window",
        type="ONNX",
        author="ci@example.com",
        inputs=[Variable("features", "float32[1,128]"), Variable("mask", "bool[1,128]")],
        outputs=[Variable("score", "float32[1]"), Variable("class", "int64[1]")],
        parameters={"learning_rate": 0.001, "epochs": 20, "batch_size": 256},
        produced_by=[run],
        metrics={
            "auc": rnd.random(),
            "loss": rnd.random(),
            "precision": rnd.random(),
            "recall": rnd.random(),
            "f1": rnd.random(),
        },
        source=SourceCode(
            "https://github.com/example/fraud-models", f"{rnd.getrandbits(160):040x}", "train/"
        ),
        datasets=[
            DatasetRef(
                f"gs://example-data/fraud/{number % 30:04d}", f"{rnd.getrandbits(256):064x}"
            ),
            DatasetRef(
                "gs://example-data/fraud/holdout",
                f"{rnd.getrandbits(256):064x}",
                DatasetRole.VALIDATION,
            ),
        ],
        labels={
            "team": rnd.choice(["risk", "growth", "search", "ads"]),
            "framework": rnd.choice(["pytorch", "xgboost", "tensorflow"]),
            "dataset": f"window-{number % 30:04d}",
            "git-branch": rnd.choice(["main", "release", "exp"]),
        },
        state=VersionState.READY,
    )


def _files(
    tenant: str, model_id: str, number: int, when: datetime, rnd: random.Random
) -> list[FileRecord]:
    sizes = {"model.onnx": MODEL_BYTES, "config.json": 2_000, "tokenizer.json": 500_000}
    return [
        FileRecord(
            tenant=tenant,
            model_id=model_id,
            version_number=number,
            file_id=file_id,
            size=size,
            sha256=f"{rnd.getrandbits(256):064x}",
            crc32c=rnd.getrandbits(32),
            content_type="application/octet-stream",
            create_time=when,
        )
        for file_id, size in sizes.items()
    ]


def _event(tenant: str, method: str, resource: str, when: datetime) -> Event:
    return Event(
        tenant=tenant,
        time=when,
        principal="user:ci@example.com",
        method=method,
        resource=resource,
        summary={"update_mask": ["state"]} if method == "SealModelVersion" else {},
        request_id=uuid.uuid4().hex,
        etag_before="",
        etag_after=uuid.uuid4().hex[:16],
    )


def seed(url: str, models: int, per_model: int, threads: int) -> float:
    """Insert everything through the store, ``threads`` tenants at once (a tenant's events
    serialise on its chain head); the seconds it took."""
    store = open_metadata_store(url, max_connections=threads + 1)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            done = [
                pool.submit(_seed_tenant, store, t, threads, models, per_model)
                for t in range(threads)
            ]
            for future in done:
                future.result()
    finally:
        store.close()
    return time.perf_counter() - started


def _seed_tenant(store: Any, t: int, threads: int, models: int, per_model: int) -> None:
    tenant = f"tenant-{t}"
    rnd = random.Random(14 + t)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for m in range(t, models, threads):
        model_id = f"model-{m:05d}"
        with store.transaction():
            store.insert_model(
                Model(
                    tenant=tenant,
                    model_id=model_id,
                    uid=str(uuid.uuid4()),
                    create_time=base,
                    update_time=base,
                    latest_version_number=per_model,
                    labels={"team": "risk", "tier": "critical"},
                    description="fraud scoring for card payments",
                )
            )
            for number in range(1, per_model + 1):
                when = base + timedelta(seconds=m * per_model + number)
                store.insert_version(_version(tenant, model_id, number, when, rnd))
                name = f"models/{model_id}/versions/{number}"
                store.append_event(_event(tenant, "CreateModelVersion", name, when))
                for record in _files(tenant, model_id, number, when, rnd):
                    blocks = -(-record.size // BLOCK)
                    sums = BlockSums(BLOCK, rnd.randbytes(4 * blocks))
                    store.touch_blob(record.sha256, record.size, when, sums)
                    store.add_file(record)
                    store.append_event(
                        _event(tenant, "UploadFile", f"{name}/files/{record.file_id}", when)
                    )
                store.append_event(_event(tenant, "SealModelVersion", name, when))
                if number % 50 == 0:
                    store.set_alias(Alias(tenant, model_id, "production", number, when))
                    store.record_alias_move(
                        AliasMove(
                            tenant, model_id, "production", number, when, "user:ci", "SetAlias"
                        )
                    )


SIZES = """
SELECT c.relname,
       c.reltuples::bigint,
       pg_table_size(c.oid),
       pg_indexes_size(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = 'public'
 ORDER BY pg_total_relation_size(c.oid) DESC
"""


def measure(url: str) -> list[tuple[str, int, int, int]]:
    import psycopg2

    conn: Any = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        cur.execute(SIZES)
        rows = [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()]
    conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions-per-model", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4, help="tenants seeded at once")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    versions = args.models * args.versions_per_model
    with running_cluster() as cluster:
        url = cluster.create_database()
        seconds = seed(url, args.models, args.versions_per_model, args.threads)
        rows = measure(url)
    if args.json:
        print(json.dumps({"versions": versions, "seed_seconds": seconds, "tables": rows}))
        return
    print(f"{versions:,} versions seeded in {seconds:.0f} s")
    print(
        f"{'table':28} {'rows':>10} {'heap MB':>9} {'index MB':>9} {'B/row':>7} {'B/version':>10}"
    )
    heap_total = index_total = 0
    for name, count, heap, index in rows:
        if heap + index < 64 * 1024:
            continue
        heap_total += heap
        index_total += index
        per_row = (heap + index) / count if count > 0 else 0
        print(
            f"{name:28} {count:>10,} {heap / 1e6:>9.1f} {index / 1e6:>9.1f} "
            f"{per_row:>7.0f} {(heap + index) / versions:>10.0f}"
        )
    print(
        f"{'total':28} {'':>10} {heap_total / 1e6:>9.1f} {index_total / 1e6:>9.1f} {'':>7} "
        f"{(heap_total + index_total) / versions:>10.0f}"
    )


if __name__ == "__main__":
    main()
