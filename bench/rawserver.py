"""A no-op gRPC server for the transfer and unary baselines.

``python -m bench.rawserver --listen 127.0.0.1:0`` prints ``raw listening on HOST:PORT``.
It runs as its own process, with the same thread pool and message limits as the registry
server, so both sides of every comparison pay the same process and transport costs.
Methods (generic handlers, ``bytes`` in and out, no protobuf):

- ``/bench.Raw/Upload`` (client stream): reads every message, answers the byte count.
- ``/bench.Raw/Download`` (server stream): request ``b"<size> <chunk>"``; streams ``size``
  bytes in ``chunk``-sized messages from prebuilt blocks (a no-op source).
- ``/bench.Raw/Empty`` (unary): answers ``b""``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc

from .payload import Payload

SERVICE = "bench.Raw"
UPLOAD = f"/{SERVICE}/Upload"
DOWNLOAD = f"/{SERVICE}/Download"
EMPTY = f"/{SERVICE}/Empty"
_SOURCE = Payload(seed=0, size=0)


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    total = 0
    for message in requests:
        total += len(message)
    return str(total).encode()


def _download(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    size_text, chunk_text = request.decode().split()
    source = Payload(seed=0, size=int(size_text))
    source.block = _SOURCE.block  # no per-call block generation
    yield from source.chunks(int(chunk_text))


def _empty(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b""


def build(listen: str, max_workers: int, message_limit: int) -> tuple[grpc.Server, int]:
    """The no-op server (bound, not started) and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
        ],
    )
    handlers = {
        "Upload": grpc.stream_unary_rpc_method_handler(_upload),
        "Download": grpc.unary_stream_rpc_method_handler(_download),
        "Empty": grpc.unary_unary_rpc_method_handler(_empty),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port(listen)
    return server, port


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.rawserver")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--max-workers", type=int, default=64)
    parser.add_argument("--max-message-bytes", type=int, default=3 << 20)
    args = parser.parse_args(argv)
    server, port = build(args.listen, args.max_workers, args.max_message_bytes)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    print(f"raw listening on {host}:{port}", flush=True)
    stopping.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
