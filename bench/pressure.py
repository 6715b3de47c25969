"""P8, serving under pressure: unary latency and server memory with 1,000 idle streams open,
next to the same server idle, and a mixed workload of many clients (``bench.mixedload``).

``python -m bench.pressure --streams 1000`` runs the idle-streams part on its own against a
fresh server (extra server flags after ``--``) and prints the JSON; ``python -m bench``
runs it as scenario P8.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelregistry.client import RegistryClient

from . import procs, stats
from .payload import MiB
from .results_model import INFO, Row, Target, ratio

REPO = Path(__file__).resolve().parent.parent
PROBES = ("get-model", "health")


def _latency(target: str, method: str, name: str, seconds: float) -> dict[str, Any]:
    """A closed loop of one caller for ``seconds``, each call with a 2 s deadline."""
    argv = [sys.executable, "-m", "bench.loadgen", "--target", target, "--method", method]
    argv += ["--name", name, "--duration", str(seconds), "--warmup", "0.2", "--timeout", "2"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    summary = stats.latency_summary(result["latencies_ms"])
    summary["errors"] = result["errors"]
    summary["calls_per_s"] = result["calls"] / result["seconds"]
    return summary


def _hold(target: str, kind: str, name: str, count: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.idlestreams", "--target", target, "--kind", kind]
    argv += ["--name", name, "--count", str(count)]
    holder = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    return holder


def _wait_ready(holder: subprocess.Popen[str], timeout: float) -> tuple[int, int]:
    assert holder.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = holder.stdout.readline()
        if line.startswith("ready"):
            _, opened, refused = line.split()
            return int(opened), int(refused)
        if not line and holder.poll() is not None:
            break
    holder.kill()
    raise RuntimeError("the idle-stream holder did not get ready")


def _release(holder: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = holder.communicate("stop\n", timeout=120)
    result: dict[str, Any] = json.loads(out)
    return result


def idle_streams(
    child: procs.Child,
    streams: int,
    probe_seconds: float,
    log: Any = print,
    kinds: Sequence[str] = ("upload", "download"),
) -> dict[str, Any]:
    """Latency of GetModel and health, and server RSS, on the idle server and then with
    ``streams`` idle uploads and, separately, ``streams`` unread downloads open."""
    with RegistryClient(child.address, timeout=60) as client:
        client.create_model("pressure")
        version = client.create_version("pressure")
        client.upload_file("pressure", version.version_number, io.BytesIO(b"\x01" * (8 * MiB)))
        client.seal_version("pressure", version.version_number)
        draft = client.create_version("pressure")
        for _ in range(20):
            client.get_model("pressure")
    download = f"{version.name}/files/payload"
    upload = f"{draft.name}/files/idle"
    data: dict[str, Any] = {"streams": streams}
    data["idle_rss"] = procs.idle_rss(child.pid)
    data["idle"] = {m: _latency(child.address, m, "models/pressure", probe_seconds) for m in PROBES}
    for kind, name in (("upload", upload), ("download", download)):
        if kind not in kinds:
            continue
        log(f"P8: {streams} idle {kind} streams")
        holder = _hold(child.address, kind, name, streams)
        try:
            opened, refused = _wait_ready(holder, timeout=120)
            # An unread download is parked after 1 s without progress and the heap trimmed
            # a moment later: measure the streams as they stay, not on their way there.
            time.sleep(1.0)
            samples = _settled_rss(child.pid)
            rss = samples[-1]
            lat = {m: _latency(child.address, m, "models/pressure", probe_seconds) for m in PROBES}
        finally:
            outcome = _release(holder)
        data[kind] = {
            "opened": opened,
            "refused": refused,
            "rss": rss,
            "rss_samples": samples,
            "rss_growth_per_stream": (rss - data["idle_rss"]) / max(opened, 1),
            "latency": lat,
            "outcome": outcome,
        }
        time.sleep(1.0)  # let the server forget the streams
    return data


def _settled_rss(pid: int, bound_s: float = 15.0, within: float = 0.02) -> list[int]:
    """Server RSS (1 s medians) until two in a row agree ``within`` a fraction, or for at most
    ``bound_s``: every sample, the last one the settled value."""
    samples = [procs.idle_rss(pid)]
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        samples.append(procs.idle_rss(pid))
        if abs(samples[-1] - samples[-2]) <= within * samples[-2]:
            break
    return samples


def mixed_load(
    child: procs.Child, clients: int, seconds: float, processes: int = 5
) -> dict[str, Any]:
    """``clients`` closed-loop callers (threads spread over ``processes`` load processes)
    running the :mod:`bench.mixedload` mix for ``seconds``: calls/s, p50/p99 per method."""
    from . import mixedload

    mixedload.prepare(child.address, models=10, versions=5)
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    runs = []
    for i, threads in enumerate(t for t in per if t):
        argv = [sys.executable, "-m", "bench.mixedload", "--target", child.address]
        argv += ["--threads", str(threads), "--duration", str(seconds), "--seed", str(i + 1)]
        runs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO))
    latencies: dict[str, list[float]] = {}
    errors: dict[str, dict[str, int]] = {}
    for run in runs:
        out, _ = run.communicate(timeout=seconds + 180)
        result = json.loads(out)
        for method, values in result["latencies_ms"].items():
            latencies.setdefault(method, []).extend(values)
        for method, codes in result["errors"].items():
            for code, n in codes.items():
                errors.setdefault(method, {}).setdefault(code, 0)
                errors[method][code] += n
    every = [x for values in latencies.values() for x in values]
    methods = {}
    for method, values in sorted(latencies.items()):
        summary = stats.latency_summary(values)
        methods[method] = {
            "calls_per_s": len(values) / seconds,
            "p50": summary["p50"],
            "p99": summary["p99"],
            "max": summary["max"],
            "write": method in mixedload.WRITES,
            "errors": errors.get(method, {}),
        }
    overall = stats.latency_summary(every)
    return {
        "clients": clients,
        "seconds": seconds,
        "calls_per_s": len(every) / seconds,
        "p50": overall.get("p50"),
        "p99": overall.get("p99"),
        "errors": sum(n for codes in errors.values() for n in codes.values()),
        "methods": methods,
    }


def _p8_idle_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    n = data["streams"]
    idle = data["idle"]
    for kind in ("upload", "download"):
        held = data[kind]
        for method in PROBES:
            lat = held["latency"][method]
            base = idle[method]
            rows.append(
                Row(
                    "P8",
                    f"{method} p99 with {n} idle {kind} streams",
                    "ms",
                    _round(lat.get("p99")),
                    _round(base.get("p99")),
                    f"same call, idle server (p50 {base.get('p50', 0):.2f} ms)",
                    ratio(lat.get("p99"), base.get("p99")),
                    Target("max", 50, "≤ 50 ms"),
                    note=f"p50 {lat.get('p50', 0):.2f} ms, {lat['errors']} errors; "
                    f"{held['opened']} open",
                )
            )
        rows.append(
            Row(
                "P8",
                f"server RSS growth per idle {kind} stream",
                "KiB",
                round(held["rss_growth_per_stream"] / 1024, 1),
                round(data["idle_rss"] / 1024, 1),
                "idle server RSS (KiB), same run",
                None,
                Target("max", 64, "≤ 64 KiB"),
                note=f"{(held['rss'] - data['idle_rss']) / MiB:.0f} MiB for {held['opened']}",
            )
        )
    return rows


def _p8_mixed_rows(label: str, data: dict[str, Any]) -> list[Row]:
    rows = [
        Row(
            "P8",
            f"{label}: {data['clients']} mixed clients, overall",
            "calls/s",
            round(data["calls_per_s"], 1),
            note=f"p50 {data['p50']:.1f} / p99 {data['p99']:.1f} ms, {data['errors']} errors",
        ),
        Row(
            "P8",
            f"{label}:   overall p99",
            "ms",
            _round(data["p99"]),
            target=Target("max", 150, "≤ 150 ms"),
        ),
    ]
    for method, m in data["methods"].items():
        rows.append(
            Row(
                "P8",
                f"{label}:   {method} p99" + (" (write)" if m["write"] else ""),
                "ms",
                _round(m["p99"]),
                target=Target("max", 250, "≤ 250 ms") if m["write"] else INFO,
                note=f"{m['calls_per_s']:.0f} calls/s, p50 {m['p50']:.1f} ms"
                + (f", errors {m['errors']}" if m["errors"] else ""),
            )
        )
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def p8_pressure(ctx: Any) -> Any:
    """P8: idle streams (latency and memory next to the idle server) and the mixed load of
    many clients on SQLite and on PostgreSQL (if its binaries are installed)."""
    from .scenarios import Outcome

    s = ctx.settings
    data: dict[str, Any] = {}
    rows: list[Row] = []
    # Every idle download admitted, to measure what one costs (the default admits 128).
    child = procs.start_registry(ctx.work / "p8-idle", "--max-download-streams", str(s.p8_streams))
    try:
        data["idle_streams"] = idle_streams(child, s.p8_streams, s.p8_probe_seconds, ctx.log)
    finally:
        child.stop()
    rows += _p8_idle_rows(data["idle_streams"])
    # One process, then the default serving model: a worker per core (--workers).
    for key, label, extra in _p8_serving_models("sqlite", "SQLite"):
        rows += _p8_mixed(ctx, data, key, label, extra)
    try:
        from tests.support.postgres import PostgresCluster, find_bindir
    except ImportError:
        bindir = None
    else:
        bindir = find_bindir()
    if bindir is None:
        rows.append(Row("P8", "PostgreSQL mixed load", "", None, note="no PostgreSQL binaries"))
        return Outcome(rows, data)
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        for key, label, extra in _p8_serving_models("postgresql", "PostgreSQL"):
            database = ("--database-url", cluster.create_database())
            rows += _p8_mixed(ctx, data, key, label, (*database, *extra))
    finally:
        cluster.destroy()
    return Outcome(rows, data)


def _p8_mixed(
    ctx: Any, data: dict[str, Any], key: str, label: str, flags: tuple[str, ...]
) -> list[Row]:
    """The mixed load against a fresh server started with ``flags``; kept in ``data``."""
    s = ctx.settings
    child = procs.start_registry(ctx.work / f"p8-{key}", *flags)
    try:
        ctx.log(f"P8: {s.p8_clients} mixed clients on {label} for {s.p8_mixed_seconds:g} s")
        data[f"mixed_{key}"] = mixed_load(child, s.p8_clients, s.p8_mixed_seconds)
    finally:
        child.stop()
    return _p8_mixed_rows(label, data[f"mixed_{key}"])


def _p8_serving_models(key: str, label: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(data key, row label, server flags): one process, and one worker per core."""
    cores = os.cpu_count() or 1
    one = (key, label, ())
    if cores < 2:
        return [one]
    return [one, (f"{key}_workers", f"{label}, {cores} workers", ("--workers", str(cores)))]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the idle-streams measurement against a fresh server and print the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.pressure")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--probe-seconds", type=float, default=3.0)
    p.add_argument("--kinds", default="upload,download")
    p.add_argument("--mixed-seconds", type=float, default=0, help="run the mixed load instead")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("server_args", nargs="*", help="extra server flags (after --)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelregistry-p8-") as tmp:
        limit = ("--max-download-streams", str(args.streams))
        child = procs.start_registry(Path(tmp), *limit, *args.server_args)
        try:
            if args.mixed_seconds:
                data = mixed_load(child, args.clients, args.mixed_seconds)
                json.dump(data, sys.stdout, indent=1)
                return 0
            data = idle_streams(
                child,
                args.streams,
                args.probe_seconds,
                log=lambda m: print(m, file=sys.stderr),
                kinds=args.kinds.split(","),
            )
        finally:
            child.stop()
    json.dump(data, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
