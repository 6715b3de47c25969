"""The replica drill, small: two server processes on one PostgreSQL database and a shared
blob directory, four uploads, one ``kill -9`` mid-upload; every upload still returns its file,
every file verifies, numbering is gapless and GC leaves no orphan (the full drill:
``scripts/drill_replicas.py``, results in docs/design.md "Uploads that survive their
replica")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.drill import DrillSettings, MiB, run_drill
from tests.support.postgres import PostgresCluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_uploads_survive_a_killed_replica(postgres_server: PostgresCluster, tmp_path: Path) -> None:
    settings = DrillSettings(
        replicas=2,
        uploads=4,
        models=2,
        concurrency=4,
        kills=1,
        min_size=1 * MiB,
        max_size=2 * MiB,
        rate=1 * MiB,
        lease_seconds=2.0,
        kill_every=(0.4, 0.7),
        restart_after=0.5,
        time_limit=40.0,
    )
    report = run_drill(
        settings,
        postgres_server.create_database(),
        f"file://{tmp_path / 'blobs'}",
        tmp_path,
    )
    assert report.ok, "\n".join(report.lines())
    assert report.kills == 1 and report.kills_mid_upload == 1, report.lines()
    assert report.taken_over >= 1, report.lines()  # an upload continued on the other replica
    assert report.verified == settings.uploads
