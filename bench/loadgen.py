"""Unary-call load generator, run as its own process so that its threads compete only with
each other, not with the harness.

``python -m bench.loadgen --target HOST:PORT --method get-version --name models/m/versions/1
--concurrency 8 --duration 5`` runs a closed loop (each of ``concurrency`` threads calls again
as soon as its previous call returns) over one shared channel, and prints one JSON object:
``{"calls", "errors", "seconds", "cores", "latencies_ms": [...], "starts_s": [...]}``
(``cores``: CPU seconds of this process per wall second of the load). Calls that start
during the first ``--warmup`` seconds are not recorded. With ``--interval`` a single thread
paces calls instead (a probe), and ``--until-stdin`` stops it when stdin closes or gets a line.
``--channels K`` spreads the closed loop's threads over K channels, each with a TCP connection
of its own (so the kernel spreads them over the workers of ``--workers N``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import channel_options
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc

from . import rawserver

METHODS = ("get-version", "get-model", "health", "raw-empty")


def make_call(
    channel: grpc.Channel, method: str, name: str, timeout: float = 30
) -> Callable[[], object]:
    """A zero-argument function making one call of ``method``."""
    if method == "get-version":
        get = mr_grpc.ModelRegistryStub(channel).GetModelVersion
        request = mr.GetModelVersionRequest(name=name)
        return lambda: get(request, timeout=timeout)
    if method == "get-model":
        get_model = mr_grpc.ModelRegistryStub(channel).GetModel
        model_request = mr.GetModelRequest(name=name)
        return lambda: get_model(model_request, timeout=timeout)
    if method == "health":
        check = health_pb2_grpc.HealthStub(channel).Check
        ping = health_pb2.HealthCheckRequest(service="")
        return lambda: check(ping, timeout=timeout)
    if method == "raw-empty":
        empty = channel.unary_unary(rawserver.EMPTY, None, None)
        return lambda: empty(b"", timeout=timeout)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


class Recorder:
    """Collects (start offset, latency) pairs of calls that started inside the window."""

    def __init__(self, t0: float, record_from: float, stop_at: float) -> None:
        self.t0 = t0
        self.record_from = record_from
        self.stop_at = stop_at
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.starts: list[float] = []
        self.latencies: list[float] = []
        self.errors = 0

    def one(self, call: Callable[[], object]) -> None:
        """Make one timed call and record it if it started inside the window."""
        start = time.perf_counter()
        ok = True
        try:
            call()
        except grpc.RpcError:
            ok = False
        end = time.perf_counter()
        if start >= self.record_from:
            with self.lock:
                if ok:
                    self.starts.append(start - self.t0)
                    self.latencies.append((end - start) * 1000)
                else:
                    self.errors += 1

    def running(self) -> bool:
        """False once the window is over or a stop was requested."""
        return not self.stop.is_set() and time.perf_counter() < self.stop_at


def closed_loop(
    call: Callable[[], object] | Sequence[Callable[[], object]], rec: Recorder, concurrency: int
) -> None:
    """``concurrency`` threads calling back to back until the window ends (thread i uses
    ``call[i % len(call)]`` when given several)."""
    calls = [call] if callable(call) else list(call)

    def worker(n: int) -> None:
        mine = calls[n % len(calls)]
        while rec.running():
            rec.one(mine)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def paced(call: Callable[[], object], rec: Recorder, interval: float) -> None:
    """One call every ``interval`` seconds (back to back if a call takes longer)."""
    next_at = time.perf_counter()
    while rec.running():
        rec.one(call)
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            rec.stop.wait(delay)
        else:
            next_at = time.perf_counter()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load and print the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--until-stdin", action="store_true")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each call")
    parser.add_argument("--channels", type=int, default=1, help="connections of the closed loop")
    args = parser.parse_args(argv)

    options = channel_options()
    if args.channels > 1:
        options = [*options, ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(args.target, options=options) for _ in range(args.channels)]
    calls = [make_call(c, args.method, args.name, args.timeout) for c in channels]
    call = calls[0]
    for each in calls:
        with contextlib.suppress(grpc.RpcError):  # an overloaded server: errors counted below
            each()  # connect before the clock starts
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    rec = Recorder(t0, t0 + args.warmup, t0 + args.warmup + args.duration)
    if args.until_stdin:

        def watch_stdin() -> None:
            sys.stdin.readline()
            rec.stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        print("ready", flush=True)
    if args.interval > 0:
        paced(call, rec, args.interval)
    else:
        closed_loop(calls, rec, args.concurrency)
    seconds = min(time.perf_counter(), rec.stop_at) - rec.record_from
    load_cpu, load_wall = time.process_time() - cpu0, time.perf_counter() - t0
    for c in channels:
        c.close()
    result = {
        "calls": len(rec.latencies),
        "errors": rec.errors,
        "seconds": max(seconds, 1e-9),
        # Cores this process kept busy from the first call (warm-up included) to the last.
        "cores": round(load_cpu / max(load_wall, 1e-9), 4),
        "latencies_ms": [round(x, 4) for x in rec.latencies],
        "starts_s": [round(x, 4) for x in rec.starts],
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
