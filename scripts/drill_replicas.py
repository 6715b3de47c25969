"""The replica drill (issue 14): 3 server processes on a throwaway PostgreSQL and the GCS
emulator (and again on a shared local directory), 20 uploads spread over them, ``kill -9`` of
random replicas mid-upload, clients resuming on the others; then every visible file verifies,
no upload is lost, version numbering is gapless and GC leaves no orphan.

    .venv/bin/python scripts/drill_replicas.py                 # both blob stores
    .venv/bin/python scripts/drill_replicas.py --blob gcs --uploads 20 --kills 6 --seed 3

Everything is bounded: ``--time-limit`` seconds per run, ``--kills`` kills. Exit status 0 when
every check held. The harness lives in tests/support/drill.py (the suite runs a small one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.blob_fixtures import emulator_process
from tests.support.drill import DrillSettings, run_drill
from tests.support.postgres import running_cluster


@contextlib.contextmanager
def gcs_url() -> Iterator[str]:
    with emulator_process() as (emulator, _):
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.endpoint
        try:
            yield f"gs://{emulator.bucket}/drill-{uuid.uuid4().hex[:8]}"
        finally:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blob", choices=("gcs", "local", "both"), default="both")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--time-limit", type=float, default=240.0)
    ns = parser.parse_args()
    settings = replace(
        DrillSettings(),
        replicas=ns.replicas,
        uploads=ns.uploads,
        kills=ns.kills,
        seed=ns.seed,
        time_limit=ns.time_limit,
    )
    failed = False
    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="drill-") as tmp:
        for kind in ("gcs", "local") if ns.blob == "both" else (ns.blob,):
            logs = Path(tmp) / kind
            logs.mkdir()
            with contextlib.ExitStack() as stack:
                if kind == "gcs":
                    blob_url = stack.enter_context(gcs_url())
                else:
                    blob_url = f"file://{Path(tmp) / 'shared-blobs'}"
                report = run_drill(settings, cluster.create_database(), blob_url, logs)
            print(f"== {kind}: {settings.replicas} replicas, PostgreSQL, {kind} blob store")
            for line in report.lines():
                print("  " + line)
            if not report.ok:
                failed = True
                for log in sorted(logs.glob("*.log")):
                    print(f"-- {log.name} (tail)")
                    print(log.read_text()[-2000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
