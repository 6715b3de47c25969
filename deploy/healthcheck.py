"""Exit 0 if the registry's gRPC health service answers SERVING, else 1 (one line on stderr).

The image's HEALTHCHECK, the compose health checks and Kubernetes exec probes run it (the
last only where the port serves TLS, which Kubernetes' built-in gRPC probe cannot speak).
It needs only grpcio and grpcio-health-checking; deploy/build-venv.sh installs it into the
venv as ``modelregistry-healthcheck``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _default_address() -> str:
    """127.0.0.1 and the port of ``MODELREGISTRY_LISTEN`` (the server's default 50051)."""
    listen = os.environ.get("MODELREGISTRY_LISTEN", "127.0.0.1:50051")
    return f"127.0.0.1:{listen.rsplit(':', 1)[-1]}"


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if not args.tls_ca:
        return grpc.insecure_channel(args.address)
    key = Path(args.tls_key).read_bytes() if args.tls_key else None
    cert = Path(args.tls_cert).read_bytes() if args.tls_cert else None
    credentials = grpc.ssl_channel_credentials(Path(args.tls_ca).read_bytes(), key, cert)
    options = [("grpc.ssl_target_name_override", args.tls_server_name)]
    return grpc.secure_channel(args.address, credentials, options if args.tls_server_name else [])


def parser() -> argparse.ArgumentParser:
    """The command line: where to check and how to connect."""
    cli = argparse.ArgumentParser(prog="modelregistry-healthcheck", description=__doc__)
    cli.add_argument("--address", default=_default_address(), help="host:port to check")
    cli.add_argument("--service", default="", help="health service name ('' = the server)")
    cli.add_argument("--timeout", type=float, default=3.0, help="seconds")
    cli.add_argument("--tls-ca", default="", help="PEM CA file: connect with TLS")
    cli.add_argument("--tls-server-name", default="", help="name the certificate must carry")
    cli.add_argument("--tls-cert", default="", help="client certificate (mutual TLS)")
    cli.add_argument("--tls-key", default="", help="client key (mutual TLS)")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Check once; 0 if SERVING."""
    args = parser().parse_args(argv)
    request = health_pb2.HealthCheckRequest(service=args.service)
    try:
        with _channel(args) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout)
    except (grpc.RpcError, OSError) as exc:
        code = exc.code().name if isinstance(exc, grpc.Call) else type(exc).__name__
        print(f"modelregistry-healthcheck: {args.address}: {code}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"modelregistry-healthcheck: {args.address}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
