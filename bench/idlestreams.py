"""Holds many idle streams open against a registry, in its own process.

``python -m bench.idlestreams --target HOST:PORT --kind upload --count 1000 --name FILE``
opens ``count`` streams over ``--channels`` connections and prints ``ready <opened> <refused>``
once they are open, then holds them until stdin closes or gets a line, and prints one JSON
object with what happened to the streams (how many the server ended, and with which codes).

- ``upload``: an ``UploadFile`` stream that sends its header and then nothing.
- ``download``: a ``DownloadFile`` of ``--name`` whose responses are never read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from modelregistry.client import channel_options
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc

EXTRA_OPTIONS: list[tuple[str, Any]] = json.loads(os.environ.get("IDLE_CLIENT_OPTIONS", "[]"))


async def _open_upload(stub: pl_grpc.PayloadServiceStub, name: str) -> Any:
    call = stub.UploadFile()
    header = pl.UploadHeader(name=name, upload_id=f"idle-{uuid.uuid4().hex}", size_bytes=1 << 20)
    await call.write(pl.UploadFileRequest(header=header))
    return call


async def _open_download(stub: pl_grpc.PayloadServiceStub, name: str) -> Any:
    call = stub.DownloadFile(pl.DownloadFileRequest(name=name))
    await call.initial_metadata()  # the server has started answering; nothing is read
    return call


async def _outcome(call: Any) -> str:
    try:
        code = await call.code()
    except asyncio.CancelledError:
        return "CANCELLED_BY_CLIENT"
    return str(code.name)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Open the streams, report readiness, hold them, then report their outcomes."""
    channels = [
        # A connection per channel: channels to one target share one by default.
        grpc.aio.insecure_channel(
            args.target,
            options=[*channel_options(), ("grpc.use_local_subchannel_pool", 1), *EXTRA_OPTIONS],
        )
        for _ in range(args.channels)
    ]
    opener = _open_upload if args.kind == "upload" else _open_download
    calls: list[Any] = []
    refused: Counter[str] = Counter()

    async def open_one(i: int) -> None:
        stub = pl_grpc.PayloadServiceStub(channels[i % len(channels)])
        try:
            calls.append(await asyncio.wait_for(opener(stub, args.name), args.open_timeout))
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            refused[exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "TIMEOUT"] += 1

    for start in range(0, args.count, 100):
        await asyncio.gather(*(open_one(i) for i in range(start, min(start + 100, args.count))))
    await asyncio.sleep(0.5)
    print(f"ready {len(calls)} {sum(refused.values())}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    done = [c for c in calls if c.done()]
    ended_early = Counter([await _outcome(c) for c in done])
    for c in calls:
        c.cancel()
    for ch in channels:
        await ch.close(grace=None)
    return {
        "opened": len(calls),
        "refused": dict(refused),
        "ended_by_server": dict(ended_early),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and hold the streams."""
    p = argparse.ArgumentParser(prog="python -m bench.idlestreams")
    p.add_argument("--target", required=True)
    p.add_argument("--kind", choices=("upload", "download"), required=True)
    p.add_argument("--name", required=True, help="file name to upload to or download")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--open-timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    json.dump(asyncio.run(run(args)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
