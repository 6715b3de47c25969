"""Processes the harness starts (the registry server, the no-op server, MLflow) and what it
measures of them from the outside: RSS (psutil, /proc peak) and CPU time."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psutil

MiB = 1 << 20


class StartError(RuntimeError):
    """A child process did not become ready."""


@dataclass
class Child:
    """A started child process with its address and log file."""

    name: str
    popen: subprocess.Popen[str]
    address: str
    log_path: Path

    @property
    def pid(self) -> int:
        """Process id."""
        return self.popen.pid

    def process(self) -> psutil.Process:
        """A psutil handle on the process."""
        return psutil.Process(self.pid)

    def tree_rss(self) -> int:
        """RSS of the process and its descendants, in bytes."""
        return tree_rss(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the whole process group is signalled."""
        stop_group(self.popen, timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def tree_rss(pid: int) -> int:
    """RSS of a process and its descendants, in bytes."""
    proc = psutil.Process(pid)
    total: int = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def stop_group(popen: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``popen`` (started with ``start_new_session``), then
    SIGKILL it after ``timeout`` seconds."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(5)


def _read_line(stream: IO[str], deadline: float) -> str | None:
    """One stdout line, or None when the deadline passes first."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            return None
    return stream.readline()


def start_child(
    name: str,
    argv: Sequence[str],
    ready_prefix: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Child:
    """Start ``argv`` in its own process group and wait for a stdout line
    ``<ready_prefix> HOST:PORT``; stderr goes to ``log_path``."""
    log = open(log_path, "w")  # noqa: SIM115 - handed to the child, closed below
    try:
        popen = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        line = _read_line(popen.stdout, deadline)
        if line is None or (line == "" and popen.poll() is not None):
            child = Child(name, popen, "", log_path)
            child.stop()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StartError(f"{name} did not start (see {log_path}):\n{tail}")
        if line.startswith(ready_prefix):
            return Child(name, popen, line[len(ready_prefix) :].strip(), log_path)


def start_registry(work: Path, *extra: str, tag: str = "registry") -> Child:
    """Our server on a free loopback port with a fresh SQLite database and blob directory
    under ``work`` (maintenance disabled, so nothing runs in the background)."""
    work.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "modelregistry_server",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite:///{work.absolute() / 'registry.db'}",
        "--blob-url",
        f"file://{work.absolute() / 'blobs'}",
        "--maintenance-interval-seconds",
        "0",
        "--log-level",
        "WARNING",
        "--workers",  # one process unless a scenario asks for more (extra comes last)
        "1",
        *extra,
    ]
    return start_child(tag, argv, "modelregistry listening on", work / f"{tag}.log")


def start_raw(work: Path, message_limit: int) -> Child:
    """The no-op baseline server (``bench.rawserver``) in its own process."""
    work.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "bench.rawserver",
        "--listen",
        "127.0.0.1:0",
        "--max-message-bytes",
        str(message_limit),
    ]
    root = Path(__file__).resolve().parent.parent
    return start_child("raw", argv, "raw listening on", work / "raw.log", cwd=root)


# --- measurements ---------------------------------------------------------------------------


def read_peak_rss(pid: int) -> int | None:
    """The kernel's peak RSS (VmHWM) of ``pid`` in bytes, if readable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if not permitted."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a thread; also reads the kernel's
    peak (VmHWM, reset at start) so short spikes between samples are not missed."""

    pid: int
    interval: float = 0.02
    samples: list[tuple[float, int]] = field(default_factory=list)
    hwm_reset: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def __enter__(self) -> Self:
        self.hwm_reset = reset_peak_rss(self.pid)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        proc = psutil.Process(self.pid)
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.perf_counter() - self._t0, proc.memory_info().rss))
            self._stop.wait(self.interval)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak(self) -> int:
        """Highest RSS seen: the larger of the samples and (if reset at start) VmHWM."""
        sampled = max((rss for _, rss in self.samples), default=0)
        hwm = read_peak_rss(self.pid) if self.hwm_reset else None
        return max(sampled, hwm or 0)


def idle_rss(pid: int, seconds: float = 1.0, interval: float = 0.05) -> int:
    """Median RSS of an idle process over ``seconds``."""
    proc = psutil.Process(pid)
    values: list[int] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        values.append(proc.memory_info().rss)
        time.sleep(interval)
    values.sort()
    return values[len(values) // 2]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (a server
    with ``--workers``: the supervisor and every worker)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds (user + system) the given processes used during a ``with`` block."""

    def __init__(self, **pids: int) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self.wall = 0.0
        self.cpu: dict[str, float] = {}

    @staticmethod
    def _seconds(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> Self:
        self._start = {name: self._seconds(p) for name, p in self._procs.items()}
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wall = time.perf_counter() - self._t0
        for name, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                self.cpu[name] = self._seconds(proc) - self._start[name]

    def utilisation(self) -> dict[str, float]:
        """CPU seconds per wall second for each process (1.0 = one core busy)."""
        if self.wall <= 0:
            return {}
        return {name: round(cpu / self.wall, 3) for name, cpu in self.cpu.items()}
