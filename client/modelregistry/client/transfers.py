"""What uploads and downloads share: the stream protocols, chunk limits and when to resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol, TypeAlias

import grpc

from modelregistry.client.errors import RegistryError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "BinaryReader",
    "BinaryWriter",
    "ProgressCallback",
    "resumable",
]

_MIB: Final = 1 << 20
#: Default size of upload chunks.
DEFAULT_CHUNK_SIZE: Final = _MIB
#: Largest upload chunk the contract allows.
MAX_CHUNK_SIZE: Final = 2 * _MIB


class BinaryReader(Protocol):
    """A binary source: files, ``BytesIO``, sockets' ``makefile("rb")``, raw streams.

    Seekable sources (``seekable()``, ``seek()`` and ``tell()``) can resume uploads.
    """

    def read(self, size: int = ..., /) -> bytes | None: ...


class BinaryWriter(Protocol):
    """A binary destination with ``write(data)``."""

    def write(self, data: bytes, /) -> int | None: ...


#: ``progress(bytes_done, total)``; ``total`` is None when the size is not known.
ProgressCallback: TypeAlias = Callable[[int, int | None], None]


def resumable(error: RegistryError) -> bool:
    """Whether a failed transfer may be resumed: a dropped or timed-out stream, a conflict."""
    code = error.code
    if code is grpc.StatusCode.ABORTED:
        return error.reason != "ETAG_MISMATCH"
    if code is grpc.StatusCode.INTERNAL:
        # Reset streams and broken connections surface as INTERNAL without server details.
        return error.reason is None
    return code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    )
