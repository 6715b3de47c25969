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


def staging_id(tenant: str, upload_id: str, holder: str) -> str:
    """The blob-store name of one writer's staging of an upload: ``storage_id`` plus a tag of
    the lease holder ('' = the name of uploads staged before per-writer staging).

    Each writer stages into its own name, so a stale writer (its lease taken over) can only
    ever change its own bytes, never those another writer continues or publishes.
    """
    sid = storage_id(tenant, upload_id)
    if not holder:
        return sid
    return f"{sid}-{hashlib.sha256(holder.encode()).hexdigest()[:16]}"


def upload_of_staging(name: str) -> str:
    """The ``storage_id`` part of a staging name (the inverse of :func:`staging_id`)."""
    return name.partition("-")[0]
