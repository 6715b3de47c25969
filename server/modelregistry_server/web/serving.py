"""The web interface's HTTP server: uvicorn on the registry's own event loop.

The socket is bound when the server is built (so a port in use is refused at start-up, like
the gRPC port); :meth:`HttpServer.start` runs ``uvicorn.Server.serve`` as a task of the loop
the ``grpc.aio`` server runs on, and :meth:`HttpServer.stop` drains it: no new connections,
in-flight requests get the grace period, then what is left is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)
_STARTED_POLL_S = 0.01


def _grace(seconds: float) -> int:
    # uvicorn takes whole seconds; 0 would time out even with nothing left to wait for.
    return max(1, math.ceil(seconds))


def split_address(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) as a host and a port; ValueError otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--http-listen {listen!r} is not host:port")
    return host.strip("[]"), int(port)


class HttpServer:
    """uvicorn serving ``app`` on ``listen`` (see the module docstring); ``reuse_port``: a
    worker of ``--workers N`` sharing the port its supervisor reserved (SO_REUSEPORT)."""

    def __init__(
        self,
        app: ASGIApp,
        listen: str,
        *,
        grace_seconds: float,
        tls: tuple[str, str] | None = None,
        reuse_port: bool = False,
    ) -> None:
        host, port = split_address(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server(
                (host, port), family=family, backlog=2048, reuse_port=reuse_port
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {listen}: the address is in use or not available"
            ) from None
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self.tls = tls is not None
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            http="h11",
            ws="none",
            timeout_graceful_shutdown=_grace(grace_seconds),
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Serve on the running loop; returns once uvicorn accepts connections."""
        self._task = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the web server stopped while starting")
            await asyncio.sleep(_STARTED_POLL_S)

    async def stop(self, grace_seconds: float) -> None:
        """Stop accepting, let requests in flight finish for ``grace_seconds``, then end."""
        task = self._task
        if task is None:
            self._socket.close()
            return
        self._server.config.timeout_graceful_shutdown = _grace(grace_seconds)
        self._server.should_exit = True
        _done, pending = await asyncio.wait({task}, timeout=grace_seconds + 5)
        if pending:
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._socket.close()
