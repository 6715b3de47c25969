"""The scenarios P1-P7 and the chunk-size sweep.

Each scenario starts its own registry server on fresh temporary directories, measures its
baseline in the same run (interleaved with the measured figure where both are repeated) and
returns table rows plus the raw numbers for the JSON file and the plots.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from modelregistry.client import RegistryClient
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc

from . import cache_pulls, pressure, procs, profiling, stats, transfers, webpages
from .payload import MiB, Payload, PayloadReader
from .results_model import INFO, Row, Target, ratio

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Sizes and durations of one run (``--quick`` shrinks them)."""

    size: int
    chunk: int
    sweep_size: int
    sweep_chunks: tuple[int, ...]
    repeats: int
    sweep_repeats: int
    p3_sizes: tuple[int, ...]
    p4_seconds: float
    p4_concurrency: tuple[int, ...]
    p5_versions: int
    p5_deep_page: int
    p5_samples: int
    p6_get_seconds: float
    p7_streams: int
    p7_stream_size: int
    profile: bool
    mlflow_python: str | None
    piece_bytes: int = 64 * MiB  # the server's default --upload-piece-bytes
    p8_streams: int = 1000
    p8_probe_seconds: float = 3.0
    p8_clients: int = 50
    p8_mixed_seconds: float = 60.0


@dataclass
class Outcome:
    """What a scenario hands back: table rows and raw numbers."""

    rows: list[Row]
    data: dict[str, Any] = field(default_factory=dict)


class Context:
    """Shared state of a run: settings, directories, the no-op server, the profiler."""

    def __init__(self, settings: Settings, work: Path, out: Path, stamp: str) -> None:
        self.settings = settings
        self.work = work
        self.out = out
        self.stamp = stamp
        self.raw: procs.Child | None = None
        self.raw_channel: grpc.Channel | None = None
        self.py_spy = profiling.find_py_spy() if settings.profile else None
        self.profiles: dict[str, dict[str, Any]] = {}
        self._seed = 1
        self._t0 = time.perf_counter()

    def log(self, message: str) -> None:
        """Progress on stderr with the elapsed time."""
        print(f"[{time.perf_counter() - self._t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    def payload(self, size: int) -> Payload:
        """A payload with bytes no other payload of this run has (no blob dedup)."""
        self._seed += 1
        return Payload(self._seed, size)

    def start_raw(self) -> None:
        """Start the shared no-op server (once)."""
        if self.raw is None:
            limit = max(*self.settings.sweep_chunks, self.settings.chunk) + MiB
            self.raw = procs.start_raw(self.work / "raw", max(limit, 3 * MiB))
            self.raw_channel = transfers.open_channel(self.raw.address)

    def raw_ch(self) -> grpc.Channel:
        """Channel to the no-op server."""
        self.start_raw()
        assert self.raw_channel is not None
        return self.raw_channel

    def close(self) -> None:
        """Stop the no-op server."""
        if self.raw_channel is not None:
            self.raw_channel.close()
        if self.raw is not None:
            self.raw.stop()

    def profile_if_missed(
        self,
        rows: Sequence[Row],
        label: str,
        pid: int,
        workload: Callable[[], object],
        *,
        gil: bool = False,
    ) -> None:
        """Replay ``workload`` under py-spy if any row missed its target (``gil``: sample
        only the GIL holder, see :func:`profiling.record`)."""
        if not any(r.ok is False for r in rows) or self.py_spy is None:
            return
        self.log(f"{label}: target missed, profiling the server with py-spy")
        output = self.out / f"{self.stamp}-profile-{label}.txt"
        try:
            self.profiles[label] = profiling.record(self.py_spy, pid, output, workload, gil=gil)
        except Exception as exc:  # a failed profile must not lose the run
            self.profiles[label] = {"error": repr(exc)}


@dataclass
class Session:
    """A running registry server with a client and a raw channel to it."""

    child: procs.Child
    client: RegistryClient
    channel: grpc.Channel
    work: Path

    def draft(self, model: str = "bench") -> str:
        """Create a DRAFT version of ``model``; the name of its ``payload`` file."""
        version = self.client.create_version(model)
        return f"{version.name}/files/payload"


@contextlib.contextmanager
def registry(ctx: Context, tag: str, *extra: str, model: str | None = "bench") -> Iterator[Session]:
    """Start a registry server on fresh directories; ``model`` is created if given."""
    work = ctx.work / tag
    child = procs.start_registry(work, *extra)
    client = RegistryClient(child.address, timeout=120)
    channel = transfers.open_channel(child.address)
    try:
        if model:
            client.create_model(model)
        yield Session(child, client, channel, work)
    finally:
        channel.close()
        client.close()
        child.stop()


def _mb(values: Sequence[transfers.Transfer]) -> list[float]:
    return [round(t.mb_per_s, 1) for t in values]


def _mib(n: int) -> str:
    return f"{n / MiB:g} MiB" if n < 1024 * MiB else f"{n / (1024 * MiB):g} GiB"


# --- P1 -------------------------------------------------------------------------------------


def p1_upload(ctx: Context) -> Outcome:
    """Upload throughput vs a raw client stream and a disk write, same bytes and chunks."""
    s = ctx.settings
    raw_runs: list[transfers.Transfer] = []
    disk_runs: list[transfers.Transfer] = []
    ours_runs: list[transfers.Transfer] = []
    file_runs: list[transfers.Transfer] = []
    cpu: list[dict[str, float]] = []
    with registry(ctx, "p1") as reg:
        blob_dir = reg.work / "blobs"
        client = RegistryClient(reg.child.address, chunk_size=s.chunk)
        # P1u's files: written (and in the page cache, their write-back done) before any
        # clock starts; new bytes to the server in every round.
        sources = [reg.work / f"p1u-{i}.bin" for i in range(s.repeats)]
        for source in sources:
            ctx.payload(s.size).write_to(str(source))
        os.sync()
        for i in range(s.repeats):
            payload = ctx.payload(s.size)
            _ = payload.sha256
            raw_runs.append(transfers.upload_raw(ctx.raw_ch(), payload, s.chunk))
            disk_runs.append(transfers.disk_write(blob_dir, payload, s.chunk, s.piece_bytes))
            target = reg.draft()
            with procs.CpuMeter(server=reg.child.pid, client=os.getpid()) as meter:
                ours_runs.append(transfers.upload_registry(reg.channel, target, payload, s.chunk))
            cpu.append(meter.utilisation())
            # P1u, as users see it: RegistryClient.upload_file of a file.
            version = reg.client.create_version("bench")
            start = time.perf_counter()
            client.upload_file("bench", version.version_number, sources[i])
            file_runs.append(transfers.Transfer(s.size, time.perf_counter() - start))
            sources[i].unlink()
            ctx.log(
                f"P1 #{i + 1}: raw {raw_runs[-1].mb_per_s:.0f}, disk {disk_runs[-1].mb_per_s:.0f}, "
                f"ours {ours_runs[-1].mb_per_s:.0f}, upload_file {file_runs[-1].mb_per_s:.0f} MB/s"
            )
        # As users see it: RegistryClient.upload_file from a non-seekable stream (the client
        # hashes while sending; the server verifies the declared size).
        payload = ctx.payload(s.size)
        version = reg.client.create_version("bench")
        start = time.perf_counter()
        client.upload_file("bench", version.version_number, PayloadReader(payload))
        wrapper = transfers.Transfer(payload.size, time.perf_counter() - start)
        client.close()

        raw_mb = stats.median(_mb(raw_runs))
        disk_mb = stats.median(_mb(disk_runs))
        ours_mb = stats.median(_mb(ours_runs))
        file_mb = stats.median(_mb(file_runs))
        lower = min(raw_mb, disk_mb)
        lower_name = "raw stream" if raw_mb <= disk_mb else "disk write+fsync"
        rows = [
            Row(
                "P1",
                f"UploadFile {_mib(s.size)}, {s.chunk // 1024} KiB chunks",
                "MB/s",
                ours_mb,
                lower,
                f"lower of raw stream {raw_mb:.0f} / disk {disk_mb:.0f} ({lower_name})",
                ratio(ours_mb, lower),
                Target("ratio_min", 0.85, "≥ 0.85x lower baseline"),
                note=f"server CPU {stats.median([c['server'] for c in cpu]):.2f} cores",
            ),
            Row(
                "P1u",
                "RegistryClient.upload_file of a file, as users see it",
                "MB/s",
                file_mb,
                ours_mb,
                "P1 UploadFile, same run",
                ratio(file_mb, ours_mb),
                Target("ratio_min", 0.8, "≥ 0.8x P1"),
                note="one read: sha256 while sending, declared at the end",
            ),
            Row(
                "P1",
                "  as users see it: RegistryClient.upload_file (stream source)",
                "MB/s",
                round(wrapper.mb_per_s, 1),
                lower,
                "same baseline",
                ratio(wrapper.mb_per_s, lower),
                INFO,
                note="client hashes sha256 while sending",
            ),
        ]

        def replay() -> None:
            again = ctx.payload(s.size)
            _ = again.sha256
            transfers.upload_registry(reg.channel, reg.draft(), again, s.chunk)

        ctx.profile_if_missed(rows, "P1", reg.child.pid, replay)
    data = {
        "size_bytes": s.size,
        "chunk_bytes": s.chunk,
        "raw_mb_s": _mb(raw_runs),
        "disk_mb_s": _mb(disk_runs),
        "ours_mb_s": _mb(ours_runs),
        "ours_seconds": [round(t.seconds, 3) for t in ours_runs],
        "wrapper_mb_s": round(wrapper.mb_per_s, 1),
        "upload_file_mb_s": _mb(file_runs),
        "cpu_utilisation": cpu,
    }
    return Outcome(rows, data)


# --- P2 -------------------------------------------------------------------------------------


def p2_download(ctx: Context) -> Outcome:
    """Download throughput vs a raw server stream from a no-op source."""
    s = ctx.settings
    raw_runs: list[transfers.Transfer] = []
    ours_runs: list[transfers.Transfer] = []
    client_runs: list[transfers.Transfer] = []
    cpu: list[dict[str, float]] = []
    with registry(ctx, "p2", "--download-chunk-bytes", str(s.chunk)) as reg:
        payload = ctx.payload(s.size)
        name = reg.draft()
        transfers.upload_registry(reg.channel, name, payload, s.chunk)
        reg.client.seal_version("bench", 1)
        for i in range(s.repeats):
            raw_runs.append(transfers.download_raw(ctx.raw_ch(), s.size, s.chunk))
            with procs.CpuMeter(server=reg.child.pid, client=os.getpid()) as meter:
                ours_runs.append(transfers.download_registry(reg.channel, name, s.size))
            cpu.append(meter.utilisation())
            # As users see it: RegistryClient.iter_file verifies sha256 + crc32c on the client.
            start = time.perf_counter()
            got = sum(len(b) for b in reg.client.iter_file("bench", 1))
            client_runs.append(transfers.Transfer(got, time.perf_counter() - start))
            ctx.log(
                f"P2 #{i + 1}: raw {raw_runs[-1].mb_per_s:.0f}, "
                f"ours {ours_runs[-1].mb_per_s:.0f}, iter_file {client_runs[-1].mb_per_s:.0f} MB/s"
            )

        raw_mb = stats.median(_mb(raw_runs))
        ours_mb = stats.median(_mb(ours_runs))
        client_mb = stats.median(_mb(client_runs))
        rows = [
            Row(
                "P2",
                f"DownloadFile {_mib(s.size)}, {s.chunk // 1024} KiB messages",
                "MB/s",
                ours_mb,
                raw_mb,
                "raw server stream, no-op source",
                ratio(ours_mb, raw_mb),
                Target("ratio_min", 0.85, "≥ 0.85x raw stream"),
                note=f"server CPU {stats.median([c['server'] for c in cpu]):.2f} cores",
            ),
            Row(
                "P2",
                "  as users see it: RegistryClient.iter_file (verifying)",
                "MB/s",
                client_mb,
                raw_mb,
                "same baseline",
                ratio(client_mb, raw_mb),
                Target("ratio_min", 0.75, "≥ 0.75x raw stream"),
                note="client checks sha256 + crc32c",
            ),
        ]
        ctx.profile_if_missed(
            rows,
            "P2",
            reg.child.pid,
            lambda: transfers.download_registry(reg.channel, name, s.size),
        )
    data = {
        "size_bytes": s.size,
        "chunk_bytes": s.chunk,
        "raw_mb_s": _mb(raw_runs),
        "ours_mb_s": _mb(ours_runs),
        "ours_messages": ours_runs[0].messages if ours_runs else 0,
        "wrapper_mb_s": _mb(client_runs),
        "cpu_utilisation": cpu,
    }
    return Outcome(rows, data)


# --- chunk sweep ----------------------------------------------------------------------------


def sweep(ctx: Context) -> Outcome:
    """P1/P2 throughput at each chunk size, ours and raw, to justify the default."""
    s = ctx.settings
    points: list[dict[str, Any]] = []
    for chunk in s.sweep_chunks:
        kib = chunk // 1024
        runs: dict[str, list[transfers.Transfer]] = {
            "raw_up": [],
            "ours_up": [],
            "raw_down": [],
            "ours_down": [],
        }
        with registry(ctx, f"sweep-{kib}k", "--download-chunk-bytes", str(chunk)) as reg:
            for _ in range(s.sweep_repeats):
                payload = ctx.payload(s.sweep_size)
                _ = payload.sha256
                name = reg.draft()
                runs["raw_up"].append(transfers.upload_raw(ctx.raw_ch(), payload, chunk))
                runs["ours_up"].append(transfers.upload_registry(reg.channel, name, payload, chunk))
                runs["raw_down"].append(transfers.download_raw(ctx.raw_ch(), payload.size, chunk))
                runs["ours_down"].append(
                    transfers.download_registry(reg.channel, name, payload.size)
                )
        point: dict[str, Any] = {"chunk_bytes": chunk}
        for key, values in runs.items():
            point[key] = stats.median(_mb(values))
            point[f"{key}_runs"] = _mb(values)
        down = runs["ours_down"][0]
        point["ours_down_mean_message_bytes"] = down.nbytes // max(down.messages, 1)
        points.append(point)
        ctx.log(
            f"sweep {kib:>4} KiB: up raw {point['raw_up']:.0f} ours {point['ours_up']:.0f} | "
            f"down raw {point['raw_down']:.0f} ours {point['ours_down']:.0f} MB/s"
        )
    capped = [
        f"{p['chunk_bytes'] // 1024} KiB setting sent "
        f"{p['ours_down_mean_message_bytes'] // 1024} KiB"
        for p in points
        if p["ours_down_mean_message_bytes"] < min(p["chunk_bytes"], s.sweep_size)
    ]
    rows: list[Row] = []
    for direction, label in (("up", "UploadFile"), ("down", "DownloadFile")):
        best = max(points, key=lambda p: p[f"ours_{direction}"])
        default = next((p for p in points if p["chunk_bytes"] == MiB), None)
        if default is None:
            continue
        rows.append(
            Row(
                "sweep",
                f"{label} at the 1 MiB default vs best chunk ({best['chunk_bytes'] // 1024} KiB)",
                "MB/s",
                default[f"ours_{direction}"],
                best[f"ours_{direction}"],
                f"best of {len(points)} chunk sizes, {_mib(s.sweep_size)} each",
                ratio(default[f"ours_{direction}"], best[f"ours_{direction}"]),
                INFO,
                note="" if direction == "up" or not capped else "messages: " + ", ".join(capped),
            )
        )
    return Outcome(rows, {"size_bytes": s.sweep_size, "points": points})


# --- P3 -------------------------------------------------------------------------------------


def p3_memory(ctx: Context) -> Outcome:
    """Server peak RSS growth over idle while uploading then downloading each size."""
    s = ctx.settings
    results: list[dict[str, Any]] = []
    for size in s.p3_sizes:
        with registry(ctx, f"p3-{size // MiB}m") as reg:
            name = reg.draft()
            reg.client.get_version("bench", 1)
            idle = procs.idle_rss(reg.child.pid)
            payload = ctx.payload(size)
            _ = payload.sha256
            with procs.RssSampler(reg.child.pid) as up:
                transfers.upload_registry(reg.channel, name, payload, s.chunk)
            with procs.RssSampler(reg.child.pid) as down:
                transfers.download_registry(reg.channel, name, size)
            peak = max(up.peak, down.peak)
            t_up = up.samples[-1][0] if up.samples else 0.0
            timeline = [[t, r] for t, r in up.samples] + [[t_up + t, r] for t, r in down.samples]
            results.append(
                {
                    "size_bytes": size,
                    "idle_rss": idle,
                    "peak_rss_upload": up.peak,
                    "peak_rss_download": down.peak,
                    "growth_bytes": peak - idle,
                    "kernel_peak_used": up.hwm_reset,
                    "timeline": stats.downsample(timeline),
                }
            )
            ctx.log(f"P3 {_mib(size)}: idle {idle / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB")
        results[-1]["raw_server"] = _raw_rss_growth(ctx, payload, s.chunk)
        ctx.log(
            f"P3 {_mib(size)}: raw no-op server grew "
            f"{results[-1]['raw_server']['growth_bytes'] / MiB:.0f} MiB on the same transfers"
        )
    rows: list[Row] = []
    first_growth = results[0]["growth_bytes"] / MiB
    first_size = results[0]["size_bytes"]
    for i, r in enumerate(results):
        growth = r["growth_bytes"] / MiB
        idle_mib = r["idle_rss"] / MiB
        rows.append(
            Row(
                "P3",
                f"peak RSS growth, {_mib(r['size_bytes'])} up + down",
                "MiB",
                round(growth, 1),
                round(idle_mib, 1),
                "idle RSS",
                ratio(idle_mib + growth, idle_mib),
                Target("max", 80, "≤ 80 MiB"),
            )
        )
        raw_growth = r["raw_server"]["growth_bytes"] / MiB
        rows.append(
            Row(
                "P3",
                f"  reference: raw no-op server, same {_mib(r['size_bytes'])} transfers",
                "MiB",
                round(raw_growth, 1),
                round(r["raw_server"]["idle_rss"] / MiB, 1),
                "its idle RSS",
                None,
                INFO,
                note="what grpcio alone holds while streaming",
            )
        )
        if i > 0:
            rows.append(
                Row(
                    "P3",
                    f"  growth {_mib(r['size_bytes'])} minus growth {_mib(first_size)}",
                    "MiB",
                    round(growth - first_growth, 1),
                    round(first_growth, 1),
                    f"growth at {_mib(results[0]['size_bytes'])}",
                    None,
                    Target("max", 16, "≤ 16 MiB (flat)"),
                )
            )
    return Outcome(rows, {"sizes": results})


def _raw_rss_growth(ctx: Context, payload: Payload, chunk: int) -> dict[str, Any]:
    """RSS growth of a fresh no-op server over the same upload and download: the part of
    the growth that grpcio's own buffering accounts for."""
    raw = procs.start_raw(ctx.work / f"p3-raw-{payload.seed}", chunk + MiB)
    channel = transfers.open_channel(raw.address)
    try:
        transfers.download_raw(channel, MiB, chunk)  # connect and warm up
        idle = procs.idle_rss(raw.pid)
        with procs.RssSampler(raw.pid) as up:
            transfers.upload_raw(channel, payload, chunk)
        with procs.RssSampler(raw.pid) as down:
            transfers.download_raw(channel, payload.size, chunk)
    finally:
        channel.close()
        raw.stop()
    return {"idle_rss": idle, "growth_bytes": max(up.peak, down.peak) - idle}


# --- P4 -------------------------------------------------------------------------------------


def run_loadgen(
    target: str,
    method: str,
    name: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    channels: int = 1,
) -> dict[str, Any]:
    """Run ``bench.loadgen`` in its own process and return its JSON."""
    argv = [sys.executable, "-m", "bench.loadgen", "--target", target, "--method", method]
    argv += ["--name", name, "--concurrency", str(concurrency), "--channels", str(channels)]
    argv += ["--duration", str(seconds), "--warmup", str(warmup)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _realistic_version(client: RegistryClient, model: str) -> str:
    """A sealed version with the metadata a real one carries; its name."""
    version = client.create_version(
        model,
        description="gradient-boosted fraud model",
        type="ONNX",
        author="ci",
        inputs=[("amount", "float32", "transaction amount"), ("country", "string")],
        outputs=[("score", "float32", "fraud probability")],
        parameters={"lr": 0.05, "depth": 8, "layers": [64, 32], "early_stopping": True},
        dependencies=[("onnxruntime", "1.20", "runtime"), ("numpy", "2.1", "library")],
        metrics={"auc": 0.97, "accuracy": 0.93, "f1": 0.88, "latency_ms": 3.2},
        source=("https://git.example/fraud", "3f2a1c9", "train.py"),
        datasets=[("gs://data/fraud/2026-11", "sha256:abc", "training")],
        labels={"team": "risk", "owner": "ml-platform"},
    )
    client.upload_file(model, version.version_number, PayloadReader(Payload(7, 64 * 1024)))
    client.seal_version(model, version.version_number)
    return version.name


@contextlib.contextmanager
def postgres_database(ctx: Context, scenario: str) -> Iterator[str | None]:
    """The URL of a database on a throwaway PostgreSQL cluster (as the tests start one,
    ``tests/support/postgres.py``), or None without its binaries; removed on exit."""
    try:
        from tests.support.postgres import PostgresCluster, find_bindir
    except ImportError:
        bindir = None
    else:
        bindir = find_bindir()
    if bindir is None:
        ctx.log(f"{scenario}: no PostgreSQL binaries, PostgreSQL run skipped")
        yield None
        return
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster.create_database()
    finally:
        cluster.destroy()


def _skipped_backend(scenario: str, why: str = "no PostgreSQL binaries") -> Row:
    return Row(scenario, "PostgreSQL runs", "", None, note=why)


def _failed_backend(ctx: Context, scenario: str, exc: Exception) -> Row:
    """The row of a PostgreSQL run that failed (the SQLite rows of the scenario stay)."""
    why = f"PostgreSQL run failed: {type(exc).__name__}: {exc}"[:300]
    ctx.log(f"{scenario}: {why}")
    return _skipped_backend(scenario, why)


def p4_unary(ctx: Context) -> Outcome:
    """GetModelVersion calls/s and latency vs an empty unary RPC (health Check) on the same
    server, at each concurrency: on SQLite, then on PostgreSQL."""
    rows, data = _p4_on(ctx, "SQLite")
    with postgres_database(ctx, "P4") as url:
        if url is None:
            rows.append(_skipped_backend("P4"))
        else:
            try:
                pg_rows, data["postgresql"] = _p4_on(ctx, "PostgreSQL", "--database-url", url)
            except Exception as exc:  # the SQLite rows stay
                pg_rows = [_failed_backend(ctx, "P4", exc)]
            rows += pg_rows
    return Outcome(rows, data)


def _p4_on(ctx: Context, backend: str, *extra: str) -> tuple[list[Row], dict[str, Any]]:
    s = ctx.settings
    runs: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    with registry(ctx, f"p4-{backend.lower()}", *extra) as reg:
        name = _realistic_version(reg.client, "bench")
        warmup = min(0.5, s.p4_seconds / 2)
        for c in s.p4_concurrency:
            for method in ("health", "get-version"):
                server = reg.child.process()
                before = sum(server.cpu_times()[:2])
                result = run_loadgen(reg.child.address, method, name, c, s.p4_seconds, warmup)
                cpu = (sum(server.cpu_times()[:2]) - before) / (s.p4_seconds + warmup)
                lat = result.pop("latencies_ms")
                result.pop("starts_s")
                runs[f"{method}@{c}"] = {
                    "concurrency": c,
                    "method": method,
                    "calls": result["calls"],
                    "errors": result["errors"],
                    "calls_per_s": result["calls"] / result["seconds"],
                    "latency_ms": stats.latency_summary(lat),
                    "cdf_ms": stats.cdf_points(lat),
                    "server_cpu_cores": round(cpu, 2),
                }
            base = runs[f"health@{c}"]
            ours = runs[f"get-version@{c}"]
            ctx.log(
                f"P4 {backend} c={c}: health {base['calls_per_s']:.0f}/s, GetModelVersion "
                f"{ours['calls_per_s']:.0f}/s p50 {ours['latency_ms']['p50']:.2f} "
                f"p99 {ours['latency_ms']['p99']:.2f} ms"
            )
            rows.append(
                Row(
                    "P4",
                    f"GetModelVersion calls/s @{c}, {backend}",
                    "calls/s",
                    round(ours["calls_per_s"]),
                    round(base["calls_per_s"]),
                    "empty unary RPC (health Check), same server",
                    ratio(ours["calls_per_s"], base["calls_per_s"]),
                    Target("ratio_min", 0.7, "≥ 0.7x"),
                    note=(
                        f"p50 {ours['latency_ms']['p50']:.2f} / p99 "
                        f"{ours['latency_ms']['p99']:.2f} ms (empty: "
                        f"{base['latency_ms']['p50']:.2f} / {base['latency_ms']['p99']:.2f})"
                    ),
                )
            )
            if c == 8:
                rows.append(
                    Row(
                        "P4",
                        f"GetModelVersion p99 @8, {backend}",
                        "ms",
                        round(ours["latency_ms"]["p99"], 2),
                        round(base["latency_ms"]["p99"], 2),
                        "empty unary RPC p99",
                        ratio(ours["latency_ms"]["p99"], base["latency_ms"]["p99"]),
                        Target("max", 10, "≤ 10 ms"),
                    )
                )
        missed_c = 8 if 8 in s.p4_concurrency else s.p4_concurrency[0]
        ctx.profile_if_missed(
            rows,
            "P4" if backend == "SQLite" else f"P4-{backend.lower()}",
            reg.child.pid,
            lambda: run_loadgen(reg.child.address, "get-version", name, missed_c, 4.0, 0.2),
            gil=True,
        )
    return rows, {"version_name": name, "runs": runs}


# P4w: the loop's threads over this many connections, so the kernel spreads them over workers.
P4W_CHANNELS = 8


def p4_workers(ctx: Context) -> Outcome:
    """GetModelVersion calls/s with ``--workers 2`` vs ``--workers 1`` (SQLite), the same load
    (closed loop over P4W_CHANNELS connections) at each P4 concurrency of 8 or more; the two
    servers take turns per level, so load from elsewhere hits both."""
    s = ctx.settings
    levels = [c for c in s.p4_concurrency if c >= 8] or [max(s.p4_concurrency)]
    warmup = min(0.5, s.p4_seconds / 2)
    rows: list[Row] = []
    data: dict[str, Any] = {"channels": P4W_CHANNELS, "runs": {}}
    with registry(ctx, "p4w-1") as one, registry(ctx, "p4w-2", "--workers", "2") as two:
        names = {
            1: _realistic_version(one.client, "bench"),
            2: _realistic_version(two.client, "bench"),
        }
        for c in levels:
            rates: dict[int, float] = {}
            for workers, reg in ((1, one), (2, two)):
                server_cpu = procs.tree_cpu(reg.child.pid)
                result = run_loadgen(
                    reg.child.address,
                    "get-version",
                    names[workers],
                    c,
                    s.p4_seconds,
                    warmup,
                    channels=P4W_CHANNELS,
                )
                server_cpu = procs.tree_cpu(reg.child.pid) - server_cpu
                window = s.p4_seconds + warmup
                lat = result.pop("latencies_ms")
                result.pop("starts_s")
                rates[workers] = result["calls"] / result["seconds"]
                data["runs"][f"{workers}w@{c}"] = {
                    "calls_per_s": rates[workers],
                    "errors": result["errors"],
                    "latency_ms": stats.latency_summary(lat),
                    # CPU per call: cores kept busy over the load / calls per second. The
                    # server's window also holds the load generator's start and its
                    # connecting calls: its figure errs a little high, the ceiling low.
                    "server_cpu_ms": _per_call(server_cpu / window, rates[workers]),
                    "loadgen_cpu_ms": _per_call(result["cores"], rates[workers]),
                }
            ctx.log(f"P4w c={c}: 1 worker {rates[1]:.0f}/s, 2 workers {rates[2]:.0f}/s")
            p99 = data["runs"][f"2w@{c}"]["latency_ms"]["p99"]
            rows.append(
                Row(
                    "P4w",
                    f"GetModelVersion calls/s @{c}, --workers 2",
                    "calls/s",
                    round(rates[2]),
                    round(rates[1]),
                    f"--workers 1, same load ({P4W_CHANNELS} connections), same run",
                    ratio(rates[2], rates[1]),
                    Target("ratio_min", 1.6, "≥ 1.6x"),
                    note=f"2 workers p99 {p99:.2f} ms; the load generator shares the cores",
                )
            )
            ceiling = _p4w_ceiling(c, data["runs"][f"2w@{c}"], rates)
            if ceiling is not None:
                rows.append(ceiling)
    return Outcome(rows, data)


def _per_call(cores: float, calls_per_s: float) -> float | None:
    """Milliseconds of CPU per call, or None without calls."""
    return cores / calls_per_s * 1e3 if calls_per_s > 0 else None


def _cores() -> int:
    """The cores this process may run on (affinity and cpusets, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _p4w_ceiling(c: int, run: dict[str, Any], rates: dict[int, float]) -> Row | None:
    """The most calls/s this machine's cores allow at the 2-worker run's CPU per call
    (server and load generator together), against the 1-worker rate: the best P4w ratio
    possible here while the load generator shares the cores."""
    cores = _cores()
    server_ms, loadgen_ms = run["server_cpu_ms"], run["loadgen_cpu_ms"]
    if server_ms is None or loadgen_ms is None or rates[1] <= 0:
        return None  # a run without calls: its own row says so
    ceiling = cores / (server_ms + loadgen_ms) * 1e3
    reached = rates[2] / ceiling * 100
    return Row(
        "P4w",
        f"  ceiling @{c}: {cores} cores / CPU per call of server + load generator",
        "calls/s",
        round(ceiling),
        round(rates[1]),
        "--workers 1, same run",
        ratio(ceiling, rates[1]),
        INFO,
        note=(
            f"server {server_ms:.2f} + load generator {loadgen_ms:.2f} ms per call; "
            f"2 workers reached {reached:.0f} % of it"
        ),
    )


# --- P5 -------------------------------------------------------------------------------------

P5_FILTER = 'labels.team = "risk" AND metrics.x > 0.1'
P5_ORDER = "metrics.x desc"


def seed_versions(db_url: str, model_id: str, count: int) -> float:
    """Insert ``count`` READY versions of one model straight through the metadata store;
    the seconds it took."""
    from modelregistry_server.domain.entities import Model, ModelVersion, VersionState
    from modelregistry_server.storage.metadata import open_metadata_store

    store = open_metadata_store(db_url)
    rnd = random.Random(5)
    start = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        store.insert_model(
            Model(
                tenant="default",
                model_id=model_id,
                uid=str(uuid.uuid4()),
                create_time=base,
                update_time=base,
                latest_version_number=count,
            )
        )
        batch = 5000
        for first in range(1, count + 1, batch):
            with store.transaction():
                for number in range(first, min(first + batch, count + 1)):
                    when = base + timedelta(seconds=number)
                    store.insert_version(
                        ModelVersion(
                            tenant="default",
                            model_id=model_id,
                            number=number,
                            uid=str(uuid.uuid4()),
                            create_time=when,
                            update_time=when,
                            type="ONNX",
                            author="sweep",
                            metrics={"x": rnd.random(), "loss": rnd.random()},
                            labels={"team": "risk" if number % 2 else "growth"},
                            state=VersionState.READY,
                        )
                    )
    finally:
        store.close()
    return time.perf_counter() - start


def p5_listing(ctx: Context) -> Outcome:
    """Filtered, metric-ordered pages of 100 over many versions: first page and a deep one,
    on SQLite, then on PostgreSQL."""
    work = ctx.work / "p5"
    work.mkdir(parents=True, exist_ok=True)
    outcome = _p5_on(ctx, "SQLite", work, f"sqlite:///{work.absolute() / 'registry.db'}")
    with postgres_database(ctx, "P5") as url:
        if url is None:
            outcome.rows.append(_skipped_backend("P5"))
        else:
            try:
                pg = _p5_on(ctx, "PostgreSQL", ctx.work / "p5-pg", url, "--database-url", url)
            except Exception as exc:  # the SQLite rows stay
                outcome.rows.append(_failed_backend(ctx, "P5", exc))
            else:
                outcome.rows += pg.rows
                outcome.data["postgresql"] = pg.data
    return outcome


def _p5_on(ctx: Context, backend: str, work: Path, db_url: str, *extra: str) -> Outcome:
    s = ctx.settings
    work.mkdir(parents=True, exist_ok=True)
    ctx.log(f"P5 {backend}: inserting {s.p5_versions} versions through the metadata store")
    seed_seconds = seed_versions(db_url, "sweep", s.p5_versions)
    ctx.log(f"P5 {backend}: inserted in {seed_seconds:.0f} s")
    child = procs.start_registry(work, *extra)
    channel = transfers.open_channel(child.address)
    stub = mr_grpc.ModelRegistryStub(channel)

    def page(token: str) -> tuple[float, mr.ListModelVersionsResponse]:
        request = mr.ListModelVersionsRequest(
            parent="models/sweep",
            page_size=100,
            filter=P5_FILTER,
            order_by=P5_ORDER,
            page_token=token,
        )
        start = time.perf_counter()
        response = stub.ListModelVersions(request, timeout=60)
        return (time.perf_counter() - start) * 1000, response

    try:
        for _ in range(3):
            page("")  # warm the connection and the database cache
        first = [page("")[0] for _ in range(s.p5_samples)]
        _, first_response = page("")
        xs = [v.metrics["x"] for v in first_response.model_versions]
        if xs != sorted(xs, reverse=True) or len(xs) != 100:
            raise RuntimeError("P5: the first page is not 100 versions ordered by metrics.x desc")
        walk: list[float] = []
        token = ""
        depth = 0
        while depth < s.p5_deep_page - 1:
            ms, response = page(token)
            walk.append(ms)
            if not response.next_page_token:
                break
            token = response.next_page_token
            depth += 1
        deep = [page(token)[0] for _ in range(s.p5_samples)]
        first_p50 = stats.percentile(first, 50)
        deep_p50 = stats.percentile(deep, 50)
        rows = [
            Row(
                "P5",
                f"ListModelVersions first page p50 ({s.p5_versions:,} versions), {backend}",
                "ms",
                round(first_p50, 2),
                None,
                "—",
                None,
                Target("max", 15, "≤ 15 ms"),
                note=f"p99 {stats.percentile(first, 99):.2f} ms",
            ),
            Row(
                "P5",
                f"ListModelVersions page {depth + 1} p50, {backend}",
                "ms",
                round(deep_p50, 2),
                None,
                "—",
                None,
                Target("max", 15, "≤ 15 ms"),
                note=f"p99 {stats.percentile(deep, 99):.2f} ms",
            ),
            Row(
                "P5",
                f"  page {depth + 1} vs first page, {backend}",
                "ms",
                round(deep_p50, 2),
                round(first_p50, 2),
                "first page p50",
                ratio(deep_p50, first_p50),
                Target("ratio_max", 1.5, "≤ 1.5x first"),
            ),
        ]
        ctx.profile_if_missed(
            rows,
            "P5" if backend == "SQLite" else f"P5-{backend.lower()}",
            child.pid,
            lambda: [page(t) for t in ["", token] * s.p5_samples],
        )
    finally:
        channel.close()
        child.stop()
    data = {
        "versions": s.p5_versions,
        "seed_seconds": round(seed_seconds, 1),
        "filter": P5_FILTER,
        "order_by": P5_ORDER,
        "page_size": 100,
        "deep_page": depth + 1,
        "first_ms": stats.latency_summary(first),
        "deep_ms": stats.latency_summary(deep),
        "walk_ms": [round(x, 3) for x in walk],
    }
    return Outcome(rows, data)


# --- P6 -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_mlflow_python(explicit: str | None) -> tuple[str | None, str]:
    """The interpreter that has MLflow (``--mlflow-python``, this venv, or
    ``bench/.mlflow-venv``) and a note on where it was found or why not."""
    candidates = [explicit] if explicit else []
    candidates += [sys.executable, str(REPO / "bench" / ".mlflow-venv" / "bin" / "python")]
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import mlflow, sys; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return python, f"mlflow {probe.stdout.strip()} from {python}"
    return None, "MLflow is not installed (pip install -e '.[bench]'); P6 skipped"


def _peer(python: str, *args: str) -> dict[str, Any]:
    argv = [python, "-m", "bench.peer", *args]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.peer {args[0]} failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@contextlib.contextmanager
def mlflow_server(python: str, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mlflow server`` with SQLite and proxied artifacts on loopback; yields its URI."""
    port = _free_port()
    argv = [python, "-m", "mlflow", "server"]
    argv += ["--backend-store-uri", f"sqlite:///{work.absolute() / 'mlflow.db'}"]
    argv += ["--artifacts-destination", str(work.absolute() / "artifacts"), "--serve-artifacts"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with open(work / "mlflow.log", "wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"mlflow server exited; see {work / 'mlflow.log'}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not become healthy within 180 s")
            time.sleep(0.5)
        yield uri, popen
    finally:
        procs.stop_group(popen, timeout=30)


def _rate(result: dict[str, Any]) -> float:
    return float(result["calls"] / result["seconds"])


def _p6_rows(ctx: Context, data: dict[str, Any], runs: dict[str, dict[str, Any]]) -> list[Row]:
    """Table rows of P6 from the peer results (latency summaries go into ``data``)."""
    s = ctx.settings
    for key, result in runs.items():
        lat = result.pop("latencies_ms")
        summary: dict[str, Any] = {"latency_ms": stats.latency_summary(lat)}
        if "seconds" in result:
            summary["calls_per_s"] = _rate(result)
        data[key] = {**result, **summary}
    rows: list[Row] = []
    mlflow_s = stats.median(data["mlflow_create_s"])
    ours_s = stats.median(data["ours_create_s"])
    rows.append(
        Row(
            "P6",
            f"create version + upload {_mib(s.size)} (speed-up)",
            "s",
            round(ours_s, 2),
            round(mlflow_s, 2),
            "MLflow: run + log_artifact + create_model_version",
            ratio(mlflow_s, ours_s),
            Target("ratio_min", 1.2, "ours ≥ 1.2x faster"),
            note=f"MLflow {s.size / mlflow_s / 1e6:.0f} MB/s, "
            f"ours {s.size / ours_s / 1e6:.0f} MB/s (ours fsyncs and verifies)",
        )
    )
    mlflow_dl = stats.median(data["mlflow_download_s"])
    ours_dl = stats.median(data["ours_download_s"])
    rows.append(
        Row(
            "P6",
            f"download {_mib(s.size)} to a file (speed-up)",
            "s",
            round(ours_dl, 2),
            round(mlflow_dl, 2),
            "MLflow: download_artifacts",
            ratio(mlflow_dl, ours_dl),
            Target("ratio_min", 2, "ours ≥ 2x faster"),
            note=f"MLflow {s.size / mlflow_dl / 1e6:.0f} MB/s, "
            f"ours {s.size / ours_dl / 1e6:.0f} MB/s (ours checks sha256 + crc32c)",
        )
    )
    mlflow_cv = data["mlflow_versions"]["latency_ms"]["p50"]
    ours_cv = data["ours_versions"]["latency_ms"]["p50"]
    rows.append(
        Row(
            "P6",
            "create a version, p50 (speed-up)",
            "ms",
            round(ours_cv, 2),
            round(mlflow_cv, 2),
            f"MLflow: create_model_version, {data['ours_versions']['calls']} calls each",
            ratio(mlflow_cv, ours_cv),
            Target("ratio_min", 10, "ours ≥ 10x faster"),
            note=f"p99 MLflow {data['mlflow_versions']['latency_ms']['p99']:.1f}, "
            f"ours {data['ours_versions']['latency_ms']['p99']:.1f} ms",
        )
    )
    rows.append(
        Row(
            "P6",
            "search a page of 100 versions, calls/s",
            "calls/s",
            round(data["ours_search"]["calls_per_s"], 1),
            round(data["mlflow_search"]["calls_per_s"], 1),
            "MLflow: search_model_versions, max_results 100",
            ratio(data["ours_search"]["calls_per_s"], data["mlflow_search"]["calls_per_s"]),
            Target("ratio_min", 5, "ours ≥ 5x"),
            note=f"pages of {data['ours_search']['page']} / {data['mlflow_search']['page']}; "
            f"p50 ours {data['ours_search']['latency_ms']['p50']:.1f}, "
            f"MLflow {data['mlflow_search']['latency_ms']['p50']:.1f} ms",
        )
    )
    for c in P6_CONCURRENCY:
        ours = data[f"ours_get@{c}"]
        ctx.log(
            f"P6 get-version/s @{c}: ours {ours['calls_per_s']:.0f}, MLflow "
            f"{data[f'mlflow_reuse@{c}']['calls_per_s']:.0f} (reused connections), "
            f"{data[f'mlflow_fresh@{c}']['calls_per_s']:.0f} (new connection per call)"
        )
        for mode, label, target in (
            ("reuse", "as users see it", Target("ratio_min", 10, "ours ≥ 10x")),
            ("fresh", "new connection per call", Target("ratio_min", 5, "ours ≥ 5x")),
        ):
            peer = data[f"mlflow_{mode}@{c}"]
            rows.append(
                Row(
                    "P6",
                    f"get-version calls/s @{c} vs MLflow, {label}",
                    "calls/s",
                    round(ours["calls_per_s"]),
                    round(peer["calls_per_s"]),
                    "MlflowClient (keep-alive connection)"
                    if mode == "reuse"
                    else "MLflow REST, no keep-alive stall",
                    ratio(ours["calls_per_s"], peer["calls_per_s"]),
                    target,
                    note=f"p50 ours {ours['latency_ms']['p50']:.2f}, "
                    f"MLflow {peer['latency_ms']['p50']:.2f} ms",
                )
            )
    ours_rss = data["ours_idle_rss_bytes"] / MiB
    mlflow_rss = data["mlflow_idle_rss_bytes"] / MiB
    rows.append(
        Row(
            "P6",
            "idle RSS (ours / MLflow)",
            "MiB",
            round(ours_rss, 1),
            round(mlflow_rss, 1),
            "mlflow server --workers 2, whole process tree",
            ratio(ours_rss, mlflow_rss),
            Target("ratio_max", 1 / 20, "≤ 1/20"),
        )
    )
    return rows


P6_CONCURRENCY = (1, 8)
P6_VERSIONS = 100  # create-version calls on each side: also what the search pages over


def p6_mlflow(ctx: Context) -> Outcome:
    """MLflow as a peer: create + upload, download, create version, search, get-version at
    1 and 8 concurrent callers, idle RSS."""
    s = ctx.settings
    python, how = find_mlflow_python(s.mlflow_python)
    if python is None:
        ctx.log(f"P6: {how}")
        return Outcome([Row("P6", "MLflow comparison", "", None, note=how)], {"skipped": how})
    work = ctx.work / "p6"
    work.mkdir(parents=True, exist_ok=True)
    artifact = work / "artifact.bin"
    ctx.payload(s.size).write_to(str(artifact))
    data: dict[str, Any] = {
        "mlflow": how,
        "size_bytes": s.size,
        "mlflow_create_s": [],
        "ours_create_s": [],
        "mlflow_download_s": [],
        "ours_download_s": [],
    }
    try:
        with mlflow_server(python, work) as (uri, popen), registry(ctx, "p6-ours") as reg:
            data["mlflow_idle_rss_bytes"] = procs.tree_rss(popen.pid)
            data["ours_idle_rss_bytes"] = reg.child.tree_rss()
            mlflow_args = ("--tracking-uri", uri)
            ours_args = ("--target", reg.child.address)
            first: dict[str, Any] = {}
            for i in range(s.repeats):
                m = _peer(python, "mlflow-create", *mlflow_args, "--file", str(artifact))
                o = _peer(sys.executable, "registry-create", *ours_args, "--file", str(artifact))
                first = first or m
                data["mlflow_create_s"].append(round(m["seconds"], 3))
                data["ours_create_s"].append(round(o["seconds"], 3))
                ctx.log(
                    f"P6 #{i + 1}: create+upload MLflow {m['seconds']:.2f} s, "
                    f"ours {o['seconds']:.2f} s"
                )
            for i in range(s.repeats):
                dest = work / f"download-{i}"
                dest.mkdir()
                m = _peer(
                    python, "mlflow-download", *mlflow_args, "--run-id", first["run_id"],
                    "--path", f"model/{artifact.name}", "--dest", str(dest),
                )  # fmt: skip
                shutil.rmtree(dest)
                dest.mkdir()
                o = _peer(
                    sys.executable, "registry-download", *ours_args, "--version", "1",
                    "--dest", str(dest / artifact.name),
                )  # fmt: skip
                shutil.rmtree(dest)
                if m["bytes"] != s.size or o["bytes"] != s.size:
                    raise RuntimeError(f"P6 downloads got {m['bytes']} / {o['bytes']} bytes")
                data["mlflow_download_s"].append(round(m["seconds"], 3))
                data["ours_download_s"].append(round(o["seconds"], 3))
                ctx.log(
                    f"P6 #{i + 1}: download MLflow {m['seconds']:.2f} s, ours {o['seconds']:.2f} s"
                )
            count = str(P6_VERSIONS)
            runs = {
                "mlflow_versions": _peer(
                    python,
                    "mlflow-versions",
                    *mlflow_args,
                    "--count",
                    count,
                    "--run-id",
                    first["run_id"],
                    "--source",
                    first["source"],
                ),
                "ours_versions": _peer(
                    sys.executable, "registry-versions", *ours_args, "--count", count
                ),
            }
            seconds = ("--seconds", str(s.p6_get_seconds))
            runs["mlflow_search"] = _peer(python, "mlflow-search", *mlflow_args, *seconds)
            runs["ours_search"] = _peer(sys.executable, "registry-search", *ours_args, *seconds)
            for c in P6_CONCURRENCY:
                each = (*seconds, "--concurrency", str(c))
                for mode in ("reuse", "fresh"):
                    runs[f"mlflow_{mode}@{c}"] = _peer(
                        python, "mlflow-get", *mlflow_args, "--mode", mode, *each
                    )
                runs[f"ours_get@{c}"] = _peer(sys.executable, "registry-get", *ours_args, *each)
            rows = _p6_rows(ctx, data, runs)
            ctx.profile_if_missed(
                rows[:1],
                "P6",
                reg.child.pid,
                lambda: _peer(
                    sys.executable, "registry-create", *ours_args, "--file", str(artifact)
                ),
            )
    except Exception as exc:  # MLflow failing must not stop the run
        note = f"MLflow could not be run: {exc}"[:300]
        ctx.log(f"P6: {note}")
        data["error"] = str(exc)[-3000:]
        return Outcome([Row("P6", "MLflow comparison", "", None, note=note)], data)
    return Outcome(rows, data)


# --- P7 -------------------------------------------------------------------------------------


def _probe(target: str, name: str, method: str = "get-version") -> subprocess.Popen[str]:
    """A paced probe (one call every 20 ms) in its own process, running until stopped."""
    argv = [sys.executable, "-m", "bench.loadgen", "--target", target, "--method", method]
    argv += ["--name", name, "--interval", "0.02", "--until-stdin", "--duration", "3600"]
    argv += ["--warmup", "0"]
    probe = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert probe.stdout is not None
    if probe.stdout.readline().strip() != "ready":
        probe.kill()
        raise RuntimeError("the latency probe did not start")
    return probe


def _stop_probe(probe: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop a probe and return its JSON result."""
    out, _ = probe.communicate("stop\n", timeout=60)
    result: dict[str, Any] = json.loads(out)
    return result


def p7_concurrent(ctx: Context) -> Outcome:
    """Many concurrent uploads: aggregate throughput vs one stream, and metadata latency."""
    return _p7(ctx, "P7")


def p7_workers(ctx: Context) -> Outcome:
    """P7 on ``--workers 2``: every upload on a connection of its own (so both workers take
    uploads), the probes as in P7; CPU summed over the workers."""
    return _p7(ctx, "P7w", "--workers", "2")


def _p7(ctx: Context, scenario: str, *extra: str) -> Outcome:
    s = ctx.settings
    workers = bool(extra)
    with registry(ctx, scenario.lower(), *extra) as reg:
        name = _realistic_version(reg.client, "bench")

        def single_stream() -> float:
            payload = ctx.payload(s.size)
            _ = payload.sha256
            done = transfers.upload_registry(reg.channel, reg.draft(), payload, s.chunk)
            ctx.log(f"{scenario}: single stream {done.mb_per_s:.0f} MB/s")
            return done.mb_per_s

        singles = [single_stream()]  # and once more after the concurrent uploads
        payloads = [ctx.payload(s.p7_stream_size) for _ in range(s.p7_streams)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.sha256, payloads))
        targets = [reg.draft() for _ in payloads]
        idle_probe = _probe(reg.child.address, name)
        time.sleep(min(3.0, s.p4_seconds))
        idle = _stop_probe(idle_probe)
        channels = [
            transfers.open_channel(reg.child.address, own_connection=workers) for _ in payloads
        ]
        # With workers, the server is the worker processes (the supervisor only waits).
        server_pids = [p.pid for p in reg.child.process().children()] if workers else []
        server_pids = server_pids or [reg.child.pid]
        idle_rss = sum(procs.idle_rss(pid, 0.5) for pid in server_pids)

        def upload_all() -> float:
            start = time.perf_counter()
            with ThreadPoolExecutor(len(payloads)) as pool:
                list(
                    pool.map(
                        lambda i: transfers.upload_registry(
                            channels[i], targets[i], payloads[i], s.chunk
                        ),
                        range(len(payloads)),
                    )
                )
            return time.perf_counter() - start

        probe = _probe(reg.child.address, name)
        # An empty RPC probed at the same time tells the server's general responsiveness
        # under this load from what GetModelVersion itself adds.
        empty_probe = _probe(reg.child.address, name, "health")
        servers = {f"server{i}": pid for i, pid in enumerate(server_pids)}
        with (
            procs.RssSampler(server_pids[0]) as rss,
            procs.CpuMeter(**servers, client=os.getpid()) as meter,
        ):
            wall = upload_all()
        used = meter.utilisation()
        server_cpu = sum(used.get(name, 0) for name in servers)
        busy = _stop_probe(probe)
        singles.append(single_stream())
        single_mb = stats.median(singles)
        empty_lat = _stop_probe(empty_probe)["latencies_ms"]
        total = s.p7_streams * s.p7_stream_size
        aggregate = total / wall / 1e6
        busy_lat = busy["latencies_ms"]
        idle_lat = idle["latencies_ms"]
        ctx.log(
            f"{scenario}: {s.p7_streams} streams {aggregate:.0f} MB/s aggregate; probe p99 "
            f"{stats.percentile(busy_lat, 99):.1f} ms (idle {stats.percentile(idle_lat, 99):.1f})"
        )
        rows = [
            Row(
                scenario,
                f"{s.p7_streams} x {_mib(s.p7_stream_size)} concurrent uploads, aggregate",
                "MB/s",
                round(aggregate, 1),
                round(single_mb, 1),
                f"P1 single stream ({_mib(s.size)}), mean of before + after",
                ratio(aggregate, single_mb),
                Target("ratio_min", 0.9, "≥ 0.9x single"),
                note=f"server CPU {server_cpu:.2f} cores",
            ),
            Row(
                scenario,
                "  GetModelVersion p99 during the uploads",
                "ms",
                round(stats.percentile(busy_lat, 99), 2),
                round(stats.percentile(idle_lat, 99), 2),
                "same probe, idle server",
                ratio(stats.percentile(busy_lat, 99), stats.percentile(idle_lat, 99)),
                Target("max", 50, "≤ 50 ms"),
                note=f"p50 {stats.percentile(busy_lat, 50):.2f} ms, {len(busy_lat)} probes",
            ),
            Row(
                scenario,
                "  empty RPC (health Check) p99 during the same uploads",
                "ms",
                round(stats.percentile(empty_lat, 99), 2),
                round(stats.percentile(idle_lat, 99), 2),
                "GetModelVersion probe, idle server",
                None,
                INFO,
                note=f"p50 {stats.percentile(empty_lat, 50):.2f} ms",
            ),
            Row(
                scenario,
                "  server peak RSS during the uploads"
                + (" (worker 0; idle: all workers)" if workers else ""),
                "MiB",
                round(rss.peak / MiB, 1),
                round(idle_rss / MiB, 1),
                "idle RSS before the uploads",
                ratio(rss.peak, idle_rss),
                INFO,
            ),
        ]

        def replay() -> None:
            for i, payload in enumerate(payloads):
                targets[i] = reg.draft()
                payloads[i] = ctx.payload(min(payload.size, 64 * MiB))
                _ = payloads[i].sha256
            upload_all()

        # A slow probe means GetModelVersion waits for the interpreter: sample the GIL holder.
        if not workers:  # py-spy follows one process
            ctx.profile_if_missed(rows, "P7", reg.child.pid, replay, gil=rows[1].ok is False)
        for ch in channels:
            ch.close()
    data = {
        "streams": s.p7_streams,
        "stream_bytes": s.p7_stream_size,
        "single_mb_s": [round(x, 1) for x in singles],
        "aggregate_mb_s": round(aggregate, 1),
        "wall_seconds": round(wall, 3),
        "cpu_utilisation": used,
        "peak_rss_bytes": rss.peak,
        "probe_busy_ms": stats.latency_summary(busy_lat),
        "probe_idle_ms": stats.latency_summary(idle_lat),
        "empty_probe_busy_ms": stats.latency_summary(empty_lat),
        "probe_busy_series": [
            [round(t, 3), round(x, 3)] for t, x in zip(busy["starts_s"], busy_lat, strict=True)
        ],
    }
    return Outcome(rows, data)


SCENARIOS: dict[str, Callable[[Context], Outcome]] = {
    "P1": p1_upload,
    "P2": p2_download,
    "sweep": sweep,
    "P3": p3_memory,
    "P4": p4_unary,
    "P4w": p4_workers,
    "P5": p5_listing,
    "P6": p6_mlflow,
    "P7": p7_concurrent,
    "P7w": p7_workers,
    "P8": pressure.p8_pressure,
    # Whole versions (bench/cache_pulls.py).
    "pull": cache_pulls.pull_scenario,
    "push": cache_pulls.push_scenario,
    "W1": webpages.w1_web_pages,
}
