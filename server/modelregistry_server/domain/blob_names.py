"""How the domain names things in the blob store: content-addressed blobs and uploads."""

from __future__ import annotations

import hashlib


def blob_key(sha256_hex: str) -> str:
    """The blob store key of content with this digest."""
    return f"sha256/{sha256_hex}"


def digest_of_key(key: str) -> str:
    """The hex digest a blob key names (the inverse of :func:`blob_key`)."""
    return key.removeprefix("sha256/")


def storage_id(tenant: str, upload_id: str) -> str:
    """The blob-store name of an upload: unique across tenants, safe as a path segment."""
    return hashlib.sha256(f"{tenant}\x00{upload_id}".encode()).hexdigest()[:40]
