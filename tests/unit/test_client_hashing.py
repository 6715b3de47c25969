"""BackgroundSha256: the digest of what was given, in order, and no helper thread left behind
by a transfer that ends early."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from modelregistry.client.hashing import BackgroundSha256


def _helpers() -> int:
    return sum(t.name == "sha256" for t in threading.enumerate())


def test_the_digest_is_that_of_every_block_in_order() -> None:
    blocks = [os.urandom(n) for n in (0, 1, 4096, 1 << 20, 77)]
    hasher = BackgroundSha256(depth=2)
    for block in blocks:
        hasher.update(memoryview(block)[1:] if len(block) > 1 else block)
    expected = hashlib.sha256()
    for block in blocks:
        expected.update(block[1:] if len(block) > 1 else block)
    assert hasher.hexdigest() == expected.hexdigest() == hasher.hexdigest()
    assert BackgroundSha256().hexdigest() == hashlib.sha256().hexdigest()


def test_closing_stops_the_helper() -> None:
    before = _helpers()
    hasher = BackgroundSha256()
    hasher.update(b"x" * 10_000)
    assert _helpers() == before + 1
    hasher.close()
    deadline = time.monotonic() + 10
    while _helpers() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _helpers() == before
