"""What a webhook's fields may hold: where it may point, what it may filter on."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import InvalidArgument
from .filter_parser import parse_filter
from .listing import EVENT_SCHEMA
from .validation import check_text

MAX_URL = 2000
MAX_WEBHOOK_DESCRIPTION = 2000
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """``localhost``, or an address in 127.0.0.0/8 or ::1."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, field: str) -> str:
    """``https://host[:port]/path?query``, or ``http://`` to a loopback host; no user name or
    password, no fragment."""
    check_text(url, field, MAX_URL)
    if not url:
        raise InvalidArgument.field(field, "is required")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidArgument.field(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidArgument.field(field, "is not a valid URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidArgument.field(field, "must be an https:// URL with a host")
    if parts.scheme == "http" and not is_loopback(host):
        raise InvalidArgument.field(
            field, "must use https (http only to a loopback host: localhost, 127.0.0.1, [::1])"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument.field(field, "must not carry a user name or password")
    if parts.fragment:
        raise InvalidArgument.field(field, "must not have a fragment")
    if port == 0:
        raise InvalidArgument.field(field, "has port 0")
    return url


def shown_url(url: str) -> str:
    """The URL without its query (which may hold a receiver's token), for the event log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def check_event_filter(text: str, field: str) -> str:
    """An AIP-160 filter over the event fields (as ListEvents'), reported under ``field``."""
    try:
        parse_filter(text, EVENT_SCHEMA)
    except InvalidArgument as exc:
        description = exc.field_violations[0].description if exc.field_violations else ""
        raise InvalidArgument.field(field, description or exc.message, reason=exc.reason) from None
    return text


def check_description(text: str, field: str) -> str:
    """At most :data:`MAX_WEBHOOK_DESCRIPTION` characters."""
    return check_text(text, field, MAX_WEBHOOK_DESCRIPTION)


def check_enabled(value: bool, field: str) -> bool:
    """Any boolean."""
    return bool(value)
