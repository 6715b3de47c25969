"""Machine description, the result table, the closing notes and the PNG plots."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import psutil
from google import protobuf

from .results_model import Row

MiB = 1 << 20


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> dict[str, str]:
    """Device and type of the filesystem holding ``path``."""
    best: Any = None
    target = str(path.resolve())
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint.rstrip("/") + "/"
        if (target + "/").startswith(mount) and (
            best is None or len(part.mountpoint) > len(best.mountpoint)
        ):
            best = part
    if best is None:
        return {}
    return {"mountpoint": best.mountpoint, "device": best.device, "fstype": best.fstype}


def _git(repo: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def machine_info(work: Path, repo: Path) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": protobuf.__version__,
        "work_filesystem": _filesystem(work),
        "git": _git(repo),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line: cores, memory, CPU, Python and grpcio versions, filesystem."""
    fs = info.get("work_filesystem", {})
    return (
        f"{info['usable_cores']} cores ({info['cpu_model']}), "
        f"{info['memory_bytes'] / (1 << 30):.0f} GiB RAM, {info['platform']}, "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, "
        f"work dir on {fs.get('fstype', '?')} ({fs.get('device', '?')})"
    )


# --- table ----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """A compact number: 3 significant digits, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    """The result table in Markdown (readable as plain text too)."""
    header = ["id", "scenario", "measured", "baseline (same run)", "ratio", "target", "result"]
    lines = [header]
    for r in rows:
        measured = f"{fmt(r.measured)} {r.unit}".strip() if r.measured is not None else "—"
        if r.baseline is not None:
            baseline = f"{fmt(r.baseline)} {r.unit}: {r.baseline_label}".strip()
        else:
            baseline = r.baseline_label or "—"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        result = r.verdict if not r.note else f"{r.verdict} — {r.note}"
        lines.append(
            [r.scenario, r.metric, measured, baseline, ratio, r.target.text or "—", result]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def closing_notes(
    rows: Sequence[Row], profiles: dict[str, dict[str, Any]], errors: dict[str, str]
) -> list[str]:
    """One line per missed target (by how much), skipped scenario, failure and hot spot."""
    notes: list[str] = []
    for r in rows:
        if r.ok is False:
            notes.append(f"MISS {r.scenario} {r.metric.strip()}: {r.gap()}.")
        elif r.verdict == "skipped":
            notes.append(f"SKIPPED {r.scenario}: {r.note}")
    for scenario, error in errors.items():
        notes.append(f"FAILED {scenario}: {error}")
    for label, prof in profiles.items():
        if "error" in prof:
            notes.append(f"profile {label}: py-spy failed: {prof['error']}")
            continue
        own = ", ".join(f"{name} {pct}%" for name, pct in prof.get("own", [])[:5])
        files = ", ".join(f"{name} {pct}%" for name, pct in prof.get("own_by_file", [])[:5])
        notes.append(
            f"profile {label} (py-spy, server, {prof.get('mode', '')}, "
            f"{prof.get('samples', 0)} samples, {prof.get('file', '')}): "
            f"top own time: {own}; by file: {files}"
        )
    return notes


# --- plots ----------------------------------------------------------------------------------


def plots(scenarios: dict[str, dict[str, Any]], out: Path, stamp: str) -> list[str]:
    """PNG plots for the scenarios that ran; the file names written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        path = out / f"{stamp}-{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)

    sweep = scenarios.get("sweep", {}).get("data")
    if sweep and sweep.get("points"):
        pts = sweep["points"]
        kib = [p["chunk_bytes"] // 1024 for p in pts]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for ax, direction, title in (
            (axes[0], "up", "UploadFile (client stream)"),
            (axes[1], "down", "DownloadFile (server stream)"),
        ):
            ax.plot(kib, [p[f"raw_{direction}"] for p in pts], "o--", label="raw gRPC, no-op")
            ax.plot(kib, [p[f"ours_{direction}"] for p in pts], "o-", label="model registry")
            ax.axvline(1024, color="grey", lw=0.8, ls=":", label="default 1 MiB")
            ax.set_xscale("log", base=2)
            ax.set_xticks(kib, [str(k) for k in kib])
            ax.set_xlabel("chunk size (KiB)")
            ax.set_title(f"{title}, {sweep['size_bytes'] // MiB} MiB")
            ax.grid(alpha=0.3)
            ax.legend()
        axes[0].set_ylabel("MB/s")
        save(fig, "chunk-sweep")

    p4 = scenarios.get("P4", {}).get("data")
    if p4 and p4.get("runs"):
        runs = p4["runs"]
        levels = sorted({r["concurrency"] for r in runs.values()})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for c in levels:
            for method, style in (("get-version", "-"), ("health", ":")):
                run = runs.get(f"{method}@{c}")
                if not run or not run["cdf_ms"]:
                    continue
                cdf = run["cdf_ms"]
                ys = [i / (len(cdf) - 1) for i in range(len(cdf))]
                label = f"{'GetModelVersion' if method == 'get-version' else 'empty RPC'} @{c}"
                axes[0].plot(cdf, ys, style, label=label)
        axes[0].set_xscale("log")
        axes[0].axvline(10, color="grey", lw=0.8)
        axes[0].set_xlabel("latency (ms, log)")
        axes[0].set_ylabel("fraction of calls")
        axes[0].set_title("latency CDF")
        axes[0].grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        width = 0.38
        xs = range(len(levels))
        for offset, method, label in (
            (-width / 2, "health", "empty RPC (baseline)"),
            (width / 2, "get-version", "GetModelVersion"),
        ):
            values = [runs.get(f"{method}@{c}", {}).get("calls_per_s", 0) for c in levels]
            axes[1].bar([x + offset for x in xs], values, width, label=label)
        axes[1].set_xticks(list(xs), [f"concurrency {c}" for c in levels])
        axes[1].set_ylabel("calls/s")
        axes[1].set_title("throughput")
        axes[1].legend()
        save(fig, "p4-unary")

    p3 = scenarios.get("P3", {}).get("data")
    if p3 and p3.get("sizes"):
        fig, ax = plt.subplots(figsize=(8, 4))
        for entry in p3["sizes"]:
            tl = entry["timeline"]
            ax.plot(
                [t for t, _ in tl],
                [(r - entry["idle_rss"]) / MiB for _, r in tl],
                label=f"{entry['size_bytes'] // MiB} MiB up + down",
            )
        ax.axhline(80, color="red", lw=0.8, ls="--", label="target 80 MiB")
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS over idle (MiB)")
        ax.set_title("server RSS during transfers")
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "p3-rss")

    p5 = scenarios.get("P5", {}).get("data")
    if p5 and p5.get("walk_ms"):
        fig, ax = plt.subplots(figsize=(8, 4))
        walk = p5["walk_ms"]
        ax.plot(range(1, len(walk) + 1), walk, ".", ms=3, label="page latency while paging")
        ax.axhline(15, color="red", lw=0.8, ls="--", label="target p50 15 ms")
        ax.set_xlabel("page number (100 versions each)")
        ax.set_ylabel("ms")
        ax.set_title(f"ListModelVersions over {p5['versions']:,} versions: {p5['filter']}")
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "p5-paging")

    p7 = scenarios.get("P7", {}).get("data")
    if p7 and p7.get("probe_busy_series"):
        fig, ax = plt.subplots(figsize=(8, 4))
        series = p7["probe_busy_series"]
        ax.plot([t for t, _ in series], [x for _, x in series], ".", ms=3)
        ax.axhline(50, color="red", lw=0.8, ls="--", label="target p99 50 ms")
        ax.set_yscale("log")
        ax.set_xlabel("seconds since probe start")
        ax.set_ylabel("GetModelVersion latency (ms, log)")
        ax.set_title(f"during {p7['streams']} concurrent uploads ({p7['aggregate_mb_s']:.0f} MB/s)")
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "p7-probe")
    return written
