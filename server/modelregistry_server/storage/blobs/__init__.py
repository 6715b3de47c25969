"""Blob store adapters, chosen by URL scheme.

- ``file:///abs/dir`` or ``file://relative/dir`` (relative to the working directory):
  :class:`~.local.LocalBlobStore`.
- ``gs://bucket`` or ``gs://bucket/prefix``: :class:`~.gcs.GcsBlobStore` (anonymous against the
  emulator named by ``STORAGE_EMULATOR_HOST``, default credentials otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ...domain.ports import BlobStore


def _open_file(location: str, options: dict[str, Any]) -> BlobStore:
    from .local import LocalBlobStore

    options.pop("timeout_seconds", None)  # local calls are not bounded
    path = unquote(location)
    if not path:
        raise ValueError("file:// blob store URL needs a directory")
    return LocalBlobStore(Path.cwd() / path, **options)


def _open_gcs(location: str, options: dict[str, Any]) -> BlobStore:
    from .gcs import GcsBlobStore

    bucket, _, prefix = location.partition("/")
    if not bucket:
        raise ValueError("gs:// blob store URL needs a bucket name")
    timeout = options.pop("timeout_seconds", None)
    if timeout is not None:  # each request, and all retries of one request
        options.update(timeout=timeout, retry_deadline=timeout)
    return GcsBlobStore(bucket, unquote(prefix), **options)


# Scheme -> factory taking the rest of the URL (after "://") and the caller's options.
_FACTORIES: dict[str, Callable[[str, dict[str, Any]], BlobStore]] = {
    "file": _open_file,
    "gs": _open_gcs,
}


def open_blob_store(url: str, **options: Any) -> BlobStore:
    """The blob store for ``url``; ``options`` go to the adapter's constructor, except
    ``timeout_seconds``: on GCS it bounds each request and all retries of one request (so a
    call fails UNAVAILABLE within about twice that when the bucket cannot be reached).

    Raises ValueError for a malformed URL or an unsupported scheme.
    """
    scheme, separator, location = url.partition("://")
    factory = _FACTORIES.get(scheme.lower()) if separator else None
    if factory is None:
        supported = ", ".join(f"{name}://" for name in sorted(_FACTORIES))
        raise ValueError(f"unsupported blob store URL {url!r}: supported schemes are {supported}")
    return factory(location, dict(options))
