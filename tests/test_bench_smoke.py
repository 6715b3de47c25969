"""Smoke test of the benchmark harness: ``python -m bench --quick`` runs and writes its JSON.

It checks the shape of the results only; performance is judged by ``make bench``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "P1,P4", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [result_file] = out.glob("*.json")
    results = json.loads(result_file.read_text())

    assert {"started", "elapsed_s", "command", "settings", "machine", "load_average"} <= set(
        results
    )
    assert {"rows", "scenarios", "profiles", "errors", "notes", "plots"} <= set(results)
    assert results["errors"] == {}
    assert set(results["scenarios"]) == {"P1", "P4"}
    assert {"logical_cores", "memory_bytes", "python", "grpcio"} <= set(results["machine"])
    assert len(results["load_average"]["start"]) == 3
    assert len(results["load_average"]["end"]) == 3

    rows = results["rows"]
    assert {r["scenario"] for r in rows} == {"P1", "P1u", "P4"}
    for row in rows:
        assert {"metric", "unit", "measured", "baseline", "ratio", "target", "verdict"} <= set(row)
        skippable = row["metric"] == "PostgreSQL runs"  # without PostgreSQL's binaries
        assert row["verdict"] in {"pass", "MISS", "info"} | ({"skipped"} if skippable else set())
    p1 = results["scenarios"]["P1"]["data"]
    assert {"raw_mb_s", "disk_mb_s", "ours_mb_s", "size_bytes", "chunk_bytes"} <= set(p1)
    p4 = results["scenarios"]["P4"]["data"]
    for backend in [p4, p4.get("postgresql")]:
        if backend is None:  # no PostgreSQL binaries
            continue
        runs = backend["runs"]
        assert {f"{m}@{c}" for m in ("health", "get-version") for c in (1, 8, 32)} == set(runs)
        for run in runs.values():
            assert run["calls"] > 0
            assert {"p50", "p99"} <= set(run["latency_ms"])
    assert (out / result_file.name.replace(".json", ".md")).exists()
