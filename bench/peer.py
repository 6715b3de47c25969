"""P6 client workloads, each run as its own process so both systems are driven alike:
``python -m bench.peer <command> ...`` prints one JSON object.

- ``mlflow-create``: create a run, log the artifact file, create a model version from it
  (MLflow's own Python client, as its users would). Timed from the run to the READY version.
- ``mlflow-get``: ``get_model_version`` in a loop (``--concurrency`` threads). ``--mode reuse``
  goes through ``MlflowClient`` (pooled keep-alive connections, as users see it); ``--mode
  fresh`` sends the same REST call on a new connection each time (avoids uvicorn's keep-alive
  stall).
- ``mlflow-download``: ``download_artifacts`` of the run's artifact to a file.
- ``mlflow-versions``: ``--count`` more ``create_model_version`` calls from the run's artifact,
  each timed.
- ``mlflow-search``: ``search_model_versions`` of the model, ``max_results`` 100, in a loop.
- ``registry-create``: ``create_version`` + ``upload_file(path)`` + ``seal_version`` through
  ``RegistryClient`` (the model exists already, as the registered model does for MLflow).
- ``registry-get``: ``RegistryClient.get_version`` in a loop (threads share one client).
- ``registry-download``: ``RegistryClient.download_file`` to a file (verifying).
- ``registry-versions``: ``--count`` ``create_version`` calls, each timed.
- ``registry-search``: ``list_versions_page(page_size=100)`` in a loop.

Only the standard library is imported at module level, so the MLflow commands also run from a
separate MLflow virtualenv (``--mlflow-python``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any


def _loop(
    call: Callable[[], object], seconds: float, warmup: float, concurrency: int = 1
) -> dict[str, Any]:
    """``concurrency`` threads calling back to back for ``warmup`` + ``seconds``; record the
    calls that start in the second part."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + seconds

    def worker() -> None:
        mine: list[float] = []
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            call()
            t1 = time.perf_counter()
            if t0 >= record_from:
                mine.append((t1 - t0) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "calls": len(latencies),
        "seconds": seconds,
        "concurrency": concurrency,
        "latencies_ms": latencies,
    }


def _timed(call: Callable[[], object], count: int) -> dict[str, Any]:
    """``count`` calls one after another, each timed."""
    latencies: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000)
    return {"calls": count, "latencies_ms": latencies}


def _mlflow_client(tracking_uri: str) -> Any:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient()


def mlflow_create(args: argparse.Namespace) -> dict[str, Any]:
    """Run + artifact upload + model version, with MLflow's client."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    with contextlib.suppress(MlflowException):  # created by an earlier repetition
        client.create_registered_model(args.model)
    experiment = client.get_experiment_by_name("bench") or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("bench")
    start = time.perf_counter()
    run = client.create_run(experiment_id)
    client.log_artifact(run.info.run_id, args.file, "model")
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(
        args.model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "version": str(version.version),
        "status": str(version.status),
        "run_id": run.info.run_id,
        "source": f"{run.info.artifact_uri}/model",
    }


def mlflow_get(args: argparse.Namespace) -> dict[str, Any]:
    """get_model_version calls/s, through MlflowClient or a fresh connection per call."""
    if args.mode == "reuse":
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(args.tracking_uri)
        client = MlflowClient()

        def call() -> object:
            return client.get_model_version(args.model, args.version)

    else:
        url = urllib.parse.urlsplit(args.tracking_uri)
        query = urllib.parse.urlencode({"name": args.model, "version": args.version})
        path = f"/api/2.0/mlflow/model-versions/get?{query}"

        def call() -> object:
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"MLflow answered {response.status}: {body[:200]!r}")
                return body
            finally:
                conn.close()

    return _loop(call, args.seconds, args.warmup, args.concurrency)


def mlflow_download(args: argparse.Namespace) -> dict[str, Any]:
    """The run's artifact to a local directory, with MLflow's client."""
    import os

    client = _mlflow_client(args.tracking_uri)
    start = time.perf_counter()
    local = client.download_artifacts(args.run_id, args.path, args.dest)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": os.path.getsize(local)}


def mlflow_versions(args: argparse.Namespace) -> dict[str, Any]:
    """``create_model_version`` from an existing artifact, ``--count`` times."""
    client = _mlflow_client(args.tracking_uri)
    return _timed(
        lambda: client.create_model_version(args.model, args.source, run_id=args.run_id),
        args.count,
    )


def mlflow_search(args: argparse.Namespace) -> dict[str, Any]:
    """``search_model_versions`` of the model, a page of 100, in a loop."""
    client = _mlflow_client(args.tracking_uri)
    found = len(client.search_model_versions(f"name='{args.model}'", max_results=100))
    result = _loop(
        lambda: client.search_model_versions(f"name='{args.model}'", max_results=100),
        args.seconds,
        args.warmup,
    )
    return {**result, "page": found}


def registry_create(args: argparse.Namespace) -> dict[str, Any]:
    """create_version + upload_file + seal_version, with our client."""
    from modelregistry.client import RegistryClient

    with RegistryClient(args.target) as client:  # the harness created the model
        start = time.perf_counter()
        version = client.create_version(args.model)
        client.upload_file(args.model, version.version_number, args.file)
        sealed = client.seal_version(args.model, version.version_number)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "version": str(sealed.version_number), "status": "READY"}


def registry_get(args: argparse.Namespace) -> dict[str, Any]:
    """get_version calls/s with our client (one channel, as users keep it)."""
    from modelregistry.client import RegistryClient

    with RegistryClient(args.target) as client:
        number = int(args.version)
        return _loop(
            lambda: client.get_version(args.model, number),
            args.seconds,
            args.warmup,
            args.concurrency,
        )


def registry_download(args: argparse.Namespace) -> dict[str, Any]:
    """``download_file`` to a path (verified before it is renamed into place)."""
    import os

    from modelregistry.client import RegistryClient

    with RegistryClient(args.target) as client:
        start = time.perf_counter()
        client.download_file(args.model, int(args.version), args.dest)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": os.path.getsize(args.dest)}


def registry_versions(args: argparse.Namespace) -> dict[str, Any]:
    """``create_version``, ``--count`` times."""
    from modelregistry.client import RegistryClient

    with RegistryClient(args.target) as client:
        return _timed(lambda: client.create_version(args.model), args.count)


def registry_search(args: argparse.Namespace) -> dict[str, Any]:
    """A page of 100 versions of the model, in a loop."""
    from modelregistry.client import RegistryClient

    with RegistryClient(args.target) as client:
        found = len(client.list_versions_page(args.model, page_size=100).model_versions)
        result = _loop(
            lambda: client.list_versions_page(args.model, page_size=100),
            args.seconds,
            args.warmup,
        )
    return {**result, "page": found}


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "mlflow-create": mlflow_create,
    "mlflow-get": mlflow_get,
    "mlflow-download": mlflow_download,
    "mlflow-versions": mlflow_versions,
    "mlflow-search": mlflow_search,
    "registry-create": registry_create,
    "registry-get": registry_get,
    "registry-download": registry_download,
    "registry-versions": registry_versions,
    "registry-search": registry_search,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run one command, print its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--tracking-uri", default="")
    parser.add_argument("--target", default="")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--version", default="1")
    parser.add_argument("--file", default="")
    parser.add_argument("--mode", choices=("reuse", "fresh"), default="reuse")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--run-id", default="")
    parser.add_argument("--source", default="")
    parser.add_argument("--path", default="model")
    parser.add_argument("--dest", default="")
    args = parser.parse_args(argv)
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON result only
        result = COMMANDS[args.command](args)
    json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
