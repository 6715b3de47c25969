"""Scenarios ``pull`` and ``push``: whole versions through ``RegistryClient.pull_version`` and
``push_directory`` (what ``modelregistry pull`` / ``push`` run), each against a baseline of
the same run.

- pull: a version of one ``--size-mib`` file pulled into an empty cache, against the raw
  ``DownloadFile`` stream of the same file on the same server (the client only counts bytes);
  then the same pull again with everything cached, against the first pull; and, for the
  record, the first pull into a cache in memory (``/dev/shm``), which leaves the disk out.
- push: a directory of 8 files (``--size-mib`` in all) pushed with 4 parallel streams against
  the same push with one stream (each push to a fresh model, new bytes every time).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelregistry.client import RegistryClient

from . import stats, transfers
from .payload import MiB
from .results_model import INFO, Row, Target, ratio

if TYPE_CHECKING:
    from .scenarios import Context, Outcome

PUSH_FILES = 8
PUSH_PARALLEL = 4


def pull_scenario(ctx: Context) -> Outcome:
    """First pull vs the raw download stream; a cached pull vs the first."""
    from .scenarios import Outcome, registry

    s = ctx.settings
    raw: list[float] = []
    first: list[float] = []
    cached: list[float] = []
    in_memory: list[float] = []
    with registry(ctx, "pull", "--download-chunk-bytes", str(s.chunk)) as reg:
        payload = ctx.payload(s.size)
        name = reg.draft()
        transfers.upload_registry(reg.channel, name, payload, s.chunk)
        reg.client.seal_version("bench", 1)
        reg.client.set_alias("bench", "production", 1)
        for i in range(s.repeats):
            cache = reg.work / f"cache-{i}"
            dest = reg.work / f"dest-{i}"
            raw.append(transfers.download_registry(reg.channel, name, s.size).mb_per_s)
            with RegistryClient(reg.child.address, timeout=120, cache_dir=cache) as client:
                start = time.perf_counter()
                pulled = client.pull_version("bench@production", dest)
                first_s = time.perf_counter() - start
                start = time.perf_counter()
                again = client.pull_version("bench@production", dest)
                cached_s = time.perf_counter() - start
            if pulled.fetched_bytes != s.size or again.fetched_bytes != 0:
                raise RuntimeError(f"pull fetched {pulled.fetched_bytes}, then {again}")
            first.append(s.size / first_s / 1e6)
            cached.append(cached_s / first_s)
            ctx.log(
                f"pull #{i + 1}: raw {raw[-1]:.0f}, pull {first[-1]:.0f} MB/s, "
                f"cached pull {cached_s * 1000:.1f} ms ({cached[-1] * 100:.2f} % of the first)"
            )
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            if _memory_room(s.size):
                in_memory.append(_pull_in_memory(reg.child.address, s.size))
                ctx.log(f"pull #{i + 1} into /dev/shm: {in_memory[-1]:.0f} MB/s")
    raw_mb = stats.median(raw)
    pull_mb = stats.median(first)
    cached_share = stats.median(cached)
    rows = [
        Row(
            "pull",
            f"pull_version of a {s.size // MiB} MiB version into an empty cache",
            "MB/s",
            round(pull_mb, 1),
            round(raw_mb, 1),
            "raw DownloadFile stream, same file",
            ratio(pull_mb, raw_mb),
            Target("ratio_min", 0.85, "≥ 0.85x raw stream"),
            note="sha256 of every byte, fsync, link into DEST; same client process",
        ),
        Row(
            "pull",
            "  second pull, everything cached (time as % of the first pull)",
            "%",
            round(cached_share * 100, 3),
            100.0,
            "the first pull",
            None,
            Target("max", 1.0, "< 1 % of the first"),
            note="GetModelVersion + cheap checks + links",
        ),
    ]
    if in_memory:
        memory_mb = stats.median(in_memory)
        rows.insert(
            1,
            Row(
                "pull",
                "  the same first pull, cache and DEST in memory (/dev/shm)",
                "MB/s",
                round(memory_mb, 1),
                round(raw_mb, 1),
                "raw DownloadFile stream, same file",
                ratio(memory_mb, raw_mb),
                INFO,
                note="the same client work without the disk: what the pull costs beyond writing",
            ),
        )
    data = {"raw_mb_s": raw, "pull_mb_s": first, "cached_share": cached, "memory_mb_s": in_memory}
    return Outcome(rows, data)


_SHM = Path("/dev/shm")


def _memory_room(size: int) -> bool:
    """Whether ``/dev/shm`` can hold a pulled file with room to spare."""
    if not _SHM.is_dir():
        return False
    return shutil.disk_usage(_SHM).free > 2 * size


def _pull_in_memory(address: str, size: int) -> float:
    """MB/s of a first pull of ``bench@production`` with cache and DEST under /dev/shm."""
    with (
        tempfile.TemporaryDirectory(dir=_SHM, prefix="modelregistry-pull-") as tmp,
        RegistryClient(address, timeout=120, cache_dir=Path(tmp) / "cache") as client,
    ):
        start = time.perf_counter()
        pulled = client.pull_version("bench@production", Path(tmp) / "dest")
        seconds = time.perf_counter() - start
    if pulled.fetched_bytes != size:
        raise RuntimeError(f"pull into /dev/shm fetched {pulled.fetched_bytes} of {size}")
    return size / seconds / 1e6


def _write_tree(ctx: Context, root: Path, total: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(PUSH_FILES):
        ctx.payload(total // PUSH_FILES).write_to(str(root / f"shard-{n}.bin"))


def push_scenario(ctx: Context) -> Outcome:
    """8 files with parallel streams vs one stream."""
    from .scenarios import Outcome, registry

    s = ctx.settings
    one: list[float] = []
    many: list[float] = []
    with registry(ctx, "push", "--upload-piece-bytes", str(s.piece_bytes), model=None) as reg:
        for i in range(s.repeats):
            for parallel, runs in ((1, one), (PUSH_PARALLEL, many)):
                tree = reg.work / f"tree-{i}-{parallel}"
                _write_tree(ctx, tree, s.size)
                start = time.perf_counter()
                reg.client.push_directory(
                    f"push-{i}-{parallel}", tree, create_model=True, parallel=parallel
                )
                runs.append(s.size / (time.perf_counter() - start) / 1e6)
                shutil.rmtree(tree, ignore_errors=True)
            ctx.log(f"push #{i + 1}: 1 stream {one[-1]:.0f}, {PUSH_PARALLEL} {many[-1]:.0f} MB/s")
    one_mb = stats.median(one)
    many_mb = stats.median(many)
    rows = [
        Row(
            "push",
            f"push_directory of {PUSH_FILES} files ({s.size // MiB} MiB), {PUSH_PARALLEL} streams",
            "MB/s",
            round(many_mb, 1),
            round(one_mb, 1),
            "the same push with 1 stream",
            ratio(many_mb, one_mb),
            INFO,
            note="includes hashing the files first",
        )
    ]
    return Outcome(rows, {"one_stream_mb_s": one, "parallel_mb_s": many})
