"""``modelregistry files …``: list, upload, download (progress bars on a terminal only)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from modelregistry.cli.commands.common import filter_option, limit_option, limited
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, when
from modelregistry.cli.refs import VERSION, VersionSpec
from modelregistry.cli.session import Session, pass_session
from modelregistry.client import DEFAULT_FILE_ID, parse_file_name

__all__ = ["file_id_of", "files"]


def file_id_of(name: str) -> str:
    """``models/m/versions/3/files/a/b.json`` → ``a/b.json``."""
    return parse_file_name(name).file_id


def _show(session: Session, data: dict[str, object]) -> None:
    session.output.result(data, Table.fields(data))


@click.group()
def files() -> None:
    """Files of versions: list, upload, download."""


@files.command("list")
@click.argument("version", **VERSION)
@filter_option
@limit_option
@pass_session
def list_files(session: Session, version: VersionSpec, filter_: str, limit: int) -> None:
    """The files of VERSION (MODEL:- every live version of MODEL, - of every model).
    E.g. --filter 'integrity = CORRUPTED'. JSON: {"files": [...]}."""
    found = limited(
        session.client.list_files(version.model, version.version, filter=filter_), limit
    )
    data = [to_data(f) for f in found]
    wildcard = version.version == "-"
    rows = []
    for f in data:
        parsed = parse_file_name(f["name"])
        row = [parsed.file_id, str(f["size_bytes"]), f["sha256"][:16], f["integrity"],
               when(f["create_time"])]  # fmt: skip
        if wildcard:
            row.insert(0, f"{parsed.model_id}:{parsed.version}")
        rows.append(row)
    columns = ["file", "bytes", "sha256", "integrity", "created"]
    if wildcard:
        columns.insert(0, "version")
    session.output.result({"files": data}, Table(columns, rows))


@files.command("upload")
@click.argument("version", **VERSION)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file-id", default=None, help=f"Id in the version [default: {DEFAULT_FILE_ID}].")
@click.option("--content-type", default="")
@pass_session
def upload_file(
    session: Session, version: VersionSpec, path: Path, file_id: str | None, content_type: str
) -> None:
    """Upload PATH into a DRAFT VERSION (verified by sha256; an interrupted upload of the same
    bytes continues where it stopped when run again)."""
    target = file_id or DEFAULT_FILE_ID
    transfers = session.transfers()
    with transfers.running():
        uploaded = session.client.upload_file(
            version.model,
            version.version,
            path,
            file_id=target,
            content_type=content_type,
            progress=transfers.track(f"↑ {target}", path.stat().st_size),
        )
    _show(session, to_data(uploaded))


@files.command("download")
@click.argument("version", **VERSION)
@click.argument("file_id", default=DEFAULT_FILE_ID)
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@pass_session
def download_file(session: Session, version: VersionSpec, file_id: str, dest: Path | None) -> None:
    """Download FILE_ID of VERSION to DEST (default: its base name here; a directory: into
    it; -: stdout), verified by size, sha256 and crc32c; nothing is left at DEST if not."""
    transfers = session.transfers()
    progress = transfers.track(f"↓ {file_id}")
    if dest is not None and str(dest) == "-":
        with transfers.running():
            session.client.download_file(
                version.model,
                version.version,
                sys.stdout.buffer,
                file_id=file_id,
                progress=progress,
            )
        sys.stdout.buffer.flush()
        return
    target = dest if dest is not None else Path(Path(file_id).name)
    if target.is_dir():
        target = target / Path(file_id).name
    with transfers.running():
        downloaded = session.client.download_file(
            version.model, version.version, target, file_id=file_id, progress=progress
        )
    data = to_data(downloaded)
    data["path"] = str(target)
    _show(session, data)
