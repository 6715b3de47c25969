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
            time.sleep(1.0)
            rss = procs.idle_rss(child.pid)
            lat = {m: _latency(child.address, m, "models/pressure", probe_seconds) for m in PROBES}
        finally:
            outcome = _release(holder)
        data[kind] = {
            "opened": opened,
            "refused": refused,
            "rss": rss,
            "rss_growth_per_stream": (rss - data["idle_rss"]) / max(opened, 1),
            "latency": lat,
            "outcome": outcome,
        }
        time.sleep(1.0)  # let the server forget the streams
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Run the idle-streams measurement against a fresh server and print the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.pressure")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--probe-seconds", type=float, default=3.0)
    p.add_argument("--kinds", default="upload,download")
    p.add_argument("server_args", nargs="*", help="extra server flags (after --)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelregistry-p8-") as tmp:
        child = procs.start_registry(Path(tmp), *args.server_args)
        try:
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
