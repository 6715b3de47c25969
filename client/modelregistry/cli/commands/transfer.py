"""``modelregistry push`` and ``modelregistry pull``: whole versions as directories, through
the client's verified cache (:meth:`RegistryClient.push_directory` / ``pull_version``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from modelregistry.cli.commands.common import key_values, metric_values, param_values
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, cell
from modelregistry.cli.refs import parse_version
from modelregistry.cli.session import Session, pass_session
from modelregistry.client import LATEST, PulledVersion, PushResult

__all__ = ["pull", "push"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@contextlib.contextmanager
def _bad_input(hint: str) -> Iterator[None]:
    """A ValueError of the library (no files to push, a file id it refuses) is a usage error."""
    try:
        yield
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint) from None


def push_data(result: PushResult) -> dict[str, Any]:
    """``push --output json``: the version, what was uploaded and what was there already."""
    return {
        "version": to_data(result.version),
        "resumed": result.resumed,
        "uploaded": list(result.uploaded),
        "skipped": list(result.skipped),
    }


def pull_data(pulled: PulledVersion) -> dict[str, Any]:
    """``pull --output json``: the version, where its files are and what was fetched."""
    return {
        "name": pulled.name,
        "version_number": pulled.version_number,
        "manifest_digest": pulled.manifest_digest,
        "path": str(pulled.path),
        "offline": pulled.offline,
        "fetched_bytes": pulled.fetched_bytes,
        "reused_bytes": pulled.reused_bytes,
        "files": [
            {
                "file_id": f.file_id,
                "path": str(f.path),
                "size_bytes": f.size_bytes,
                "sha256": f.sha256,
            }
            for f in pulled.files
        ],
    }


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "-m", required=True, help="The model to add the version to.")
@click.option("--create-model", is_flag=True, help="Create the model if it does not exist.")
@click.option("--alias", "-a", default=None, help="Point this alias at the new version.")
@click.option("--stage", default=None, type=click.Choice(
    ["DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"], case_sensitive=False
), help="Move the new version to this stage.")  # fmt: skip
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=NUMBER", help="Repeatable.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Repeatable; JSON values (0.01, [64,32], true) are kept as such.")  # fmt: skip
@click.option("--source-commit", default=None, metavar="SHA", help="The commit it was built from.")
@click.option("--dataset", "datasets", multiple=True, metavar="URI", help="Repeatable.")
@click.option("--description", default="")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Upload streams at once.")  # fmt: skip
@pass_session
def push(
    session: Session,
    path: Path,
    model: str,
    create_model: bool,
    alias: str | None,
    stage: str | None,
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    source_commit: str | None,
    datasets: tuple[str, ...],
    description: str,
    parallel: int,
) -> None:
    """Push a directory (every file; its relative path is its file id) or one FILE as a new
    version of --model: uploads over several streams, seals, sets --stage and --alias.

    Run the same push again after an interruption and it continues: files already stored are
    not sent again, unfinished uploads continue from their committed bytes. The same push after
    a complete one returns that version instead of a copy.
    """
    transfers = session.transfers()
    with transfers.running(), _bad_input("PATH"):
        result = session.client.push_directory(
            model,
            path,
            create_model=create_model,
            alias=alias,
            stage=stage,
            labels=key_values(labels),
            metrics=metric_values(metrics),
            params=param_values(params),
            source_commit=source_commit,
            datasets=list(datasets),
            description=description,
            parallel=parallel,
            progress=transfers.track(f"push {path.name or path}"),
        )
    v = result.version
    how = "continued" if result.resumed else "created"
    rows = [
        ("version", v.name),
        ("state", "resumed push" if result.resumed else "new"),
        ("manifest_digest", v.manifest_digest),
        ("files", f"{v.file_count} ({_size(v.total_size_bytes)})"),
        ("uploaded", str(len(result.uploaded))),
        ("already stored", str(len(result.skipped))),
        ("aliases", cell(list(v.aliases))),
    ]
    session.output.note(f"{how} {v.name}")
    session.output.result(push_data(result), Table(("field", "value"), rows))


@click.command()
@click.argument("ref", metavar="MODEL[@ALIAS|:VERSION]")
@click.argument("dest", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--copy", is_flag=True, help="Writable copies instead of links to the cache.")
@click.option("--offline", is_flag=True, help="Only the cache (a pinned MODEL:VERSION).")
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Files fetched at once.")  # fmt: skip
@pass_session
def pull(
    session: Session, ref: str, dest: Path | None, copy: bool, offline: bool, parallel: int
) -> None:
    """Pull every file of a version into DEST (default: ./MODEL), verified, through the local
    cache (MODELREGISTRY_CACHE_DIR, default ~/.cache/modelregistry).

    An alias or latest is resolved once; every file then comes from exactly that version.
    Cached contents are not fetched again, an interrupted pull continues where it stopped, and
    a pinned MODEL:VERSION pulled before works with the server down. Files are hard links to
    the read-only cache (--copy for copies).
    """
    spec = parse_version(ref)
    if spec.version == "-":
        raise click.BadParameter(f"{ref!r}: name one version", param_hint="REF")
    target = f"models/{spec.model}/versions/{spec.version or LATEST}"
    transfers = session.transfers()
    with transfers.running(), _bad_input("MODEL[@ALIAS|:VERSION]"):
        pulled = session.client.pull_version(
            target,
            dest if dest is not None else Path(spec.model),
            copy=copy,
            parallel=parallel,
            offline=offline,
            progress=transfers.track(f"pull {ref}"),
        )
    rows = [
        ("version", pulled.name),
        ("manifest_digest", pulled.manifest_digest),
        ("path", str(pulled.path)),
        ("files", f"{len(pulled.files)} ({_size(sum(f.size_bytes for f in pulled.files))})"),
        ("fetched", _size(pulled.fetched_bytes)),
        ("from cache", _size(pulled.reused_bytes) + (" (offline)" if pulled.offline else "")),
    ]
    session.output.result(pull_data(pulled), Table(("field", "value"), rows))
