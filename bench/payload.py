"""Deterministic payloads: a 1 MiB pseudo-random block repeated, never whole in memory."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from functools import cached_property

MiB = 1 << 20
BLOCK = MiB


class Payload:
    """``size`` bytes made of one seeded 1 MiB block repeated; each seed gives distinct bytes,
    so uploads with different seeds are different blobs (no content-addressed dedup)."""

    def __init__(self, seed: int, size: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.seed = seed
        self.size = size
        self.block = random.Random(seed).randbytes(BLOCK)

    def __repr__(self) -> str:
        return f"Payload(seed={self.seed}, size={self.size})"

    def pieces(self, chunk: int) -> list[bytes]:
        """The distinct chunks of size ``chunk`` the payload cycles through.

        ``chunk`` must divide 1 MiB or be a multiple of it, so every chunk is a prebuilt
        ``bytes`` object and producing the stream copies nothing.
        """
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        if BLOCK % chunk == 0:
            return [self.block[i : i + chunk] for i in range(0, BLOCK, chunk)]
        if chunk % BLOCK == 0:
            return [self.block * (chunk // BLOCK)]
        raise ValueError(f"chunk size {chunk} must divide 1 MiB or be a multiple of it")

    def chunks(self, chunk: int) -> Iterator[bytes]:
        """The payload's bytes in ``chunk``-sized messages (the last one may be shorter)."""
        pieces = self.pieces(chunk)
        sent = 0
        i = 0
        while sent < self.size:
            data = pieces[i]
            i = (i + 1) % len(pieces)
            if sent + len(data) > self.size:
                data = data[: self.size - sent]
            sent += len(data)
            yield data

    @cached_property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of the whole payload (computed once, outside any timing)."""
        digest = hashlib.sha256()
        for data in self.chunks(BLOCK):
            digest.update(data)
        return digest.hexdigest()

    def write_to(self, path: str, chunk: int = BLOCK) -> None:
        """Write the payload to ``path`` and make it durable."""
        with open(path, "wb") as out:
            for data in self.chunks(chunk):
                out.write(data)
            out.flush()
            os.fsync(out.fileno())


class PayloadReader:
    """A non-seekable binary reader over a payload (what a pipe or socket looks like)."""

    def __init__(self, payload: Payload) -> None:
        self._chunks = payload.chunks(BLOCK)
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all remaining bytes when negative); ``b""`` at the end."""
        while size < 0 or len(self._pending) < size:
            data = next(self._chunks, None)
            if data is None:
                break
            self._pending = data if not self._pending else self._pending + data
        if size < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out
