"""``python -m bench``: run the scenarios, print one table, write JSON, Markdown and plots."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report
from .payload import MiB
from .results_model import Row
from .scenarios import REPO, SCENARIOS, Context, Settings

DEFAULTS: dict[str, Any] = {
    "size_mib": 1024,
    "sweep_mib": 256,
    "repeats": 3,
    "sweep_repeats": 2,
    "p4_seconds": 5.0,
    "p5_versions": 100_000,
    "p5_deep_page": 100,
    "p5_samples": 30,
    "p6_get_seconds": 5.0,
    "p7_stream_mib": 256,
    "p8_streams": 1000,
    "p8_mixed_seconds": 60.0,
}
QUICK: dict[str, Any] = {
    "size_mib": 64,
    "sweep_mib": 32,
    "repeats": 1,
    "sweep_repeats": 1,
    "p4_seconds": 1.0,
    "p5_versions": 5_000,
    "p5_deep_page": 20,
    "p5_samples": 10,
    "p6_get_seconds": 2.0,
    "p7_stream_mib": 8,
    "p8_streams": 200,
    "p8_mixed_seconds": 5.0,
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; unset sizes come from DEFAULTS or, with --quick, QUICK."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the model registry, each against a baseline measured in "
        "the same run (see bench/README.md).",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temp dirs")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--size-mib", type=int, help="P1/P2/P6 payload and P3 base size (1024)")
    p.add_argument("--chunk-kib", type=int, default=1024, help="P1/P2/P3/P7 chunk size")
    p.add_argument("--sweep-mib", type=int, help="payload per sweep point (256)")
    p.add_argument("--sweep-chunks-kib", default="64,128,256,512,1024,2048")
    p.add_argument("--repeats", type=int, help="repetitions of P1/P2/P6 transfers (3)")
    p.add_argument("--sweep-repeats", type=int, help="repetitions per sweep point (2)")
    p.add_argument("--p3-multiples", default="1,4", help="P3 sizes as multiples of --size-mib")
    p.add_argument("--p4-seconds", type=float, help="measured seconds per P4 run (5)")
    p.add_argument("--p4-concurrency", default="1,8,32")
    p.add_argument("--p5-versions", type=int, help="versions inserted for P5 (100000)")
    p.add_argument("--p5-deep-page", type=int, help="page number of the deep page (100)")
    p.add_argument("--p5-samples", type=int, help="calls per measured P5 page (30)")
    p.add_argument("--p6-get-seconds", type=float, help="seconds per get-version loop (5)")
    p.add_argument("--p7-streams", type=int, default=16)
    p.add_argument("--p7-stream-mib", type=int, help="bytes per P7 upload (256)")
    p.add_argument("--p8-streams", type=int, help="idle streams of each kind in P8 (1000)")
    p.add_argument("--p8-clients", type=int, default=50, help="P8 mixed-load clients")
    p.add_argument("--p8-mixed-seconds", type=float, help="P8 mixed load per backend (60)")
    p.add_argument("--mlflow-python", default=None, help="interpreter with MLflow installed")
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy the server when a target is missed (default: on, off with --quick)",
    )
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.profile is None:
        args.profile = not args.quick
    unknown = [s for s in args.scenarios.split(",") if s and s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings in bytes and seconds."""
    size = args.size_mib * MiB
    return Settings(
        size=size,
        chunk=args.chunk_kib * 1024,
        sweep_size=args.sweep_mib * MiB,
        sweep_chunks=tuple(k * 1024 for k in _ints(args.sweep_chunks_kib)),
        repeats=max(args.repeats, 1),
        sweep_repeats=max(args.sweep_repeats, 1),
        p3_sizes=tuple(size * m for m in _ints(args.p3_multiples)),
        p4_seconds=args.p4_seconds,
        p4_concurrency=_ints(args.p4_concurrency),
        p5_versions=args.p5_versions,
        p5_deep_page=args.p5_deep_page,
        p5_samples=args.p5_samples,
        p6_get_seconds=args.p6_get_seconds,
        p7_streams=args.p7_streams,
        p7_stream_size=args.p7_stream_mib * MiB,
        profile=args.profile,
        mlflow_python=args.mlflow_python,
        p8_streams=args.p8_streams,
        p8_clients=args.p8_clients,
        p8_mixed_seconds=args.p8_mixed_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected scenarios and write the results; 0 unless the harness itself broke."""
    args = parse_args(argv)
    settings = settings_from(args)
    selected = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="modelregistry-bench-", dir=args.workdir))
    machine = report.machine_info(work, REPO)
    load_start = os.getloadavg()
    ctx = Context(settings, work, out, stamp)
    ctx.log(f"bench {stamp}: {', '.join(selected)}; work dir {work}")
    ctx.log(report.describe_machine(machine))

    rows: list[Row] = []
    scenarios: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    try:
        for name in selected:
            ctx.log(f"--- {name}")
            begin = time.perf_counter()
            try:
                outcome = SCENARIOS[name](ctx)
            except Exception as exc:  # report it and go on with the other scenarios
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"[:500]
                scenarios[name] = {"elapsed_s": round(time.perf_counter() - begin, 1)}
                scenarios[name]["error"] = errors[name]
                continue
            rows.extend(outcome.rows)
            scenarios[name] = {
                "elapsed_s": round(time.perf_counter() - begin, 1),
                "data": outcome.data,
                "rows": [r.to_json() for r in outcome.rows],
            }
    finally:
        ctx.close()
        if not args.keep_workdir:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    load_end = os.getloadavg()

    written = report.plots(scenarios, out, stamp)
    notes = report.closing_notes(rows, ctx.profiles, errors)
    if not written:
        notes.append("plots skipped: matplotlib is not installed (pip install -e '.[bench]')")
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    text_table = report.table(rows)
    results = {
        "schema": 1,
        "started": started.isoformat(),
        "elapsed_s": round(elapsed, 1),
        "command": command.strip(),
        "settings": asdict(settings),
        "machine": machine,
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "rows": [r.to_json() for r in rows],
        "scenarios": scenarios,
        "profiles": ctx.profiles,
        "errors": errors,
        "notes": notes,
        "plots": written,
    }
    json_path = out / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    markdown = [
        f"Command: `{results['command']}` — {stamp}, {elapsed / 60:.1f} min",
        f"Machine: {report.describe_machine(machine)}",
        f"Load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}",
        "",
        text_table,
        "",
        *[f"- {n}" for n in notes],
    ]
    (out / f"{stamp}.md").write_text("\n".join(markdown) + "\n")

    print()
    print("\n".join(markdown))
    print()
    print(f"results: {json_path}" + (f"; plots: {', '.join(written)}" if written else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
