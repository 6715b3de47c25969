"""The ``WebhookSender`` adapter: one POST with the standard library's ``http.client``.

No redirects are followed (a 3xx is a failed attempt), the response body is read up to
:data:`MAX_RESPONSE_BYTES` and dropped, and every failure becomes an error class without
detail (no addresses, no certificate text): ``timeout``, ``connection refused``,
``connection failed``, ``tls error``, ``bad response``, ``redirect not followed``,
``http <status>``.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..domain.webhook_types import SendResult

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 64 * 1024


class HttpSender:
    """POSTs deliveries; https is verified against the system's CAs (or ``ca_file``)."""

    def __init__(self, ca_file: str = "") -> None:
        self._tls = ssl.create_default_context(cafile=ca_file or None)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> SendResult:
        """POST ``body`` to ``url``; never raises."""
        started = time.monotonic()
        status, error = 0, ""
        try:
            status = self._post(url, body, headers, timeout)
        except TimeoutError:
            error = "timeout"
        except ConnectionRefusedError:
            error = "connection refused"
        except ssl.SSLError:
            error = "tls error"
        except http.client.HTTPException:
            error = "bad response"
        except OSError:
            error = "connection failed"
        except Exception:  # a bug here must not stop the dispatcher
            log.exception("webhook POST failed unexpectedly")
            error = "internal error"
        if not error and 300 <= status < 400:
            error = "redirect not followed"
        elif not error and not 200 <= status < 300:
            error = f"http {status}"
        return SendResult(status, error, int((time.monotonic() - started) * 1000))

    def _post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", target, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return response.status
        finally:
            connection.close()
