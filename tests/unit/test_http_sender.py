"""The HTTP sender against loopback receivers: 2xx delivered, redirects not followed, errors
classed without detail, timeouts bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelregistry_server.outbound.http_sender import HttpSender


@contextmanager
def answering(status: int, delay: float = 0.0) -> Iterator[str]:
    """A loopback server answering every POST with ``status`` after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/in?x=1"
    finally:
        server.shutdown()
        server.server_close()


def test_statuses_become_results() -> None:
    sender = HttpSender()
    for status, error in ((200, ""), (204, ""), (302, "redirect not followed"), (500, "http 500")):
        with answering(status) as url:
            result = sender.post(url, b"{}", {"Content-Type": "application/json"}, 5)
        assert (result.status_code, result.error, result.delivered) == (status, error, not error)


def test_a_refused_connection_and_a_timeout_are_classed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = HttpSender().post(f"http://127.0.0.1:{port}/", b"{}", {}, 5)
    assert (refused.status_code, refused.error) == (0, "connection refused")
    with answering(200, delay=1.0) as url:
        started = time.monotonic()
        slow = HttpSender().post(url, b"{}", {}, 0.2)
    assert slow.error == "timeout" and time.monotonic() - started < 1.0
