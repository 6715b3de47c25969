"""Fingerprints of request bodies, so a reused ``request_id`` is told apart from a retry."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message


def request_fingerprint(request: Message) -> str:
    """``sha256:<hex>`` of the request's deterministic encoding without its ``request_id``.

    Deterministic encoding orders map entries (labels, metrics, Struct fields), so equal
    requests give equal fingerprints however the client built them.
    """
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return "sha256:" + hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()
