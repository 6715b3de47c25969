"""py-spy sampling of the server while a workload is replayed, summarised into hot spots."""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")


def find_py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def _frame(frame: str) -> str:
    """``func (path/to/file.py:123)`` → ``func (file.py)``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['name']} ({Path(match['path']).name})"


def _short_path(path: str) -> str:
    """``.../site-packages/grpc/_server.py`` → ``grpc/_server.py``; our modules keep their
    package path (``modelregistry_server/storage/blobs/local.py``)."""
    parts = Path(path).parts
    for anchor in ("site-packages", "modelregistry_server", "bench"):
        if anchor in parts:
            i = parts.index(anchor)
            return "/".join(parts[i + 1 :] if anchor == "site-packages" else parts[i:])
    return path  # py-spy already shortens library paths (grpc/_server.py)


def summarise(collapsed: Path, top: int = 12) -> dict[str, Any]:
    """Top functions by own (leaf) samples, own samples per source file, and top functions
    by inclusive samples, each as % of all samples."""
    own: collections.Counter[str] = collections.Counter()
    files: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        leaf = _FRAME.match(stack.split(";")[-1])
        files[_short_path(leaf["path"]) if leaf else "?"] += count
        for name in set(frames):
            inclusive[name] += count

    def pct(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    if not total:
        return {"samples": 0, "own": [], "own_by_file": [], "inclusive": []}
    return {
        "samples": total,
        "own": pct(own),
        "own_by_file": pct(files),
        "inclusive": pct(inclusive),
    }


def record(
    py_spy: str,
    pid: int,
    output: Path,
    workload: Callable[[], object],
    *,
    gil: bool = False,
    rate: int = 100,
) -> dict[str, Any]:
    """Sample ``pid`` with py-spy while ``workload`` runs; write the collapsed stacks to
    ``output`` and return their summary (or an ``error``).

    ``gil`` samples only the thread holding the GIL: what the interpreter spends its time
    on, for GIL-bound work. Without it every thread that is not idle is sampled, which
    also shows time spent in I/O and in native code that released the GIL.
    """
    argv = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    argv += ["--output", str(output), "--nonblocking", *(["--gil"] if gil else [])]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # attach before the workload starts
    try:
        workload()
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not output.exists():
        return {"error": (err or "py-spy wrote no output").strip()[-500:]}
    summary = summarise(output)
    summary["file"] = output.name
    summary["mode"] = "GIL holder only" if gil else "all non-idle threads"
    return summary
