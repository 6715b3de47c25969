"""Directory trees for push/pull tests: nested directories, an empty file and two files with
the same content, written to disk and read back as ``{relative path: bytes}``."""

from __future__ import annotations

from pathlib import Path

KiB = 1024


def write_tree(root: Path, seed: int = 0, *, model_bytes: int = 300 * KiB) -> dict[str, bytes]:
    """Write the tree under ``root``; ``seed`` varies every file, ``model.bin`` is the largest."""
    files = {
        "model.bin": bytes((i * 7 + seed) % 251 for i in range(model_bytes)),
        "config.json": b'{"layers": 3, "seed": %d}' % seed,
        "tokenizer/vocab.txt": b"a\nb\nc\n" * 1000,
        "tokenizer/merges/rules.txt": b"a b\n" * 500,
        "empty.txt": b"",
        "copies/one.bin": b"shared" * 5000 + bytes([seed]),
        "copies/two.bin": b"shared" * 5000 + bytes([seed]),
    }
    for file_id, data in files.items():
        path = root / file_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except hidden ones (the cache's and the CLI's state)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
