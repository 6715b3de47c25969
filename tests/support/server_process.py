"""The registry server as a subprocess (``python -m modelregistry_server``): started on port 0,
its address read from the ``modelregistry listening on HOST:PORT`` line, stopped or SIGKILLed.

The process runs in a session of its own, and signals go to that whole process group, so a
server started through a wrapper (``make run``) stops with it."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

_READY = re.compile(r"modelregistry listening on (\S+:\d+|none)")
_WEB_READY = re.compile(r"modelregistry web interface on (https?://\S+:\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ServerProcess:
    """One server process; ``address`` is valid after :meth:`start`. Its log goes to ``log``."""

    def __init__(
        self,
        database_url: str,
        blob_url: str,
        log: Path,
        *,
        piece_bytes: int | None = None,
        extra_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """``command`` replaces the whole command line; ``env`` replaces the environment."""
        self.command = [
            sys.executable,
            "-m",
            "modelregistry_server",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--blob-url",
            blob_url,
            "--maintenance-interval-seconds",
            "0",
            "--shutdown-grace-seconds",
            "1",
            "--workers",  # one process (the default is one per core); extra_args may override
            "1",
            *(["--upload-piece-bytes", str(piece_bytes)] if piece_bytes else []),
            *extra_args,
        ]
        if command is not None:
            self.command = list(command)
        self._env = dict(os.environ if env is None else env)
        self.log = log
        self._preexec_fn = preexec_fn
        self.address = ""  # "none" with --listen none
        self.web_url = ""  # with --http-listen: http://host:port
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> Self:
        """Start the process and wait for its "listening" line."""
        env = {**self._env, "PYTHONUNBUFFERED": "1"}
        self._lines = queue.Queue()  # a restart must not read the previous run's end
        with self.log.open("a") as log:
            self._process = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                start_new_session=True,
                preexec_fn=self._preexec_fn,
            )
        assert self._process.stdout is not None
        threading.Thread(
            target=self._drain, args=(self._process.stdout,), name="server-stdout", daemon=True
        ).start()
        while True:
            try:
                line = self._lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server did not start in {START_TIMEOUT_S}s") from None
            if line is None:
                raise RuntimeError(f"server exited at start-up:\n{self.log.read_text()[-4000:]}")
            web = _WEB_READY.search(line)
            if web:
                self.web_url = web.group(1)
            found = _READY.search(line)
            if found:
                self.address = found.group(1)
                return self

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def alive(self) -> bool:
        """True while the process runs (False after a crash, e.g. SIGBUS)."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), None while running."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self._process is not None and self._process.poll() is None:
            self._signal(signal.SIGKILL)
        if self._process is not None:
            self._process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not exit in time."""
        if self._process is None or self._process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.pid, signum)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
