"""``modelregistry versions …``: list, show, create, update, seal, stage, transitions, delete,
undelete, compare. A version is written ``MODEL:N``, ``MODEL@ALIAS``, ``MODEL`` (latest) or
``models/M/versions/V`` (:mod:`modelregistry.cli.refs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from modelregistry.cli.commands.common import (
    filter_option,
    key_values,
    limit_option,
    limited,
    metric_values,
    order_by_option,
    param_values,
)
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, cell, when
from modelregistry.cli.refs import VERSION, VersionSpec, parse_versions
from modelregistry.cli.session import Session, pass_session
from modelregistry.client import parse_version_name
from modelregistry.v1 import resources_pb2 as res

__all__ = ["short_name", "versions"]

STAGES = ("development", "staging", "production", "archived")


def short_name(name: str) -> str:
    """``models/m/versions/3`` → ``m:3``."""
    parsed = parse_version_name(name)
    return f"{parsed.model_id}:{parsed.version}"


def _show(session: Session, version: res.ModelVersion) -> None:
    data = to_data(version)
    session.output.result(data, Table.fields(data))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@click.group()
def versions() -> None:
    """Model versions: list, show, create, update, seal, stage, delete, compare."""


@versions.command("list")
@click.argument("model", default="-")
@filter_option
@order_by_option
@click.option("--show-deleted", is_flag=True, help="Include soft-deleted versions.")
@limit_option
@pass_session
def list_versions(
    session: Session, model: str, filter_: str, order_by: str, show_deleted: bool, limit: int
) -> None:
    """List the versions of MODEL ("-", the default: of every model). JSON: {"model_versions":
    [...]}. E.g. --filter 'stage = PRODUCTION AND metrics.auc > 0.9' --order-by 'metrics.auc
    desc'."""
    found = limited(
        session.client.list_versions(
            model.removeprefix("models/"),
            filter=filter_,
            order_by=order_by,
            show_deleted=show_deleted,
        ),
        limit,
    )
    data = [to_data(v) for v in found]
    rows = [
        [
            short_name(v["name"]), v["state"], v["stage"], ",".join(v["aliases"]),
            cell(v["metrics"]), str(v["file_count"]), _size(v["total_size_bytes"]),
            v["author"], when(v["create_time"]),
        ]
        for v in data
    ]  # fmt: skip
    columns = ["version", "state", "stage", "aliases", "metrics", "files", "size", "author",
               "created"]  # fmt: skip
    session.output.result({"model_versions": data}, Table(columns, rows))


@versions.command("show")
@click.argument("version", **VERSION)
@click.option("--at", "read_time", type=click.DateTime(), help="Resolve an alias as of then (UTC).")
@pass_session
def show_version(session: Session, version: VersionSpec, read_time: datetime | None) -> None:
    """Show a version (MODEL alone: its latest)."""
    _show(session, session.client.get_version(version.model, version.version, read_time=read_time))


@versions.command("create")
@click.argument("model")
@click.option("--description", default="")
@click.option("--type", "type_", default="", help="e.g. ONNX.")
@click.option("--author", default="")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=NUMBER")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="VALUE as JSON if it is."
)
@click.option("--source-repository", default="")
@click.option("--source-commit", default="")
@click.option("--source-path", default="")
@click.option("--dataset", "datasets", multiple=True, metavar="URI")
@click.option("--produced-by", "produced_by", multiple=True, **VERSION, help="Repeatable.")
@pass_session
def create_version(
    session: Session,
    model: str,
    description: str,
    type_: str,
    author: str,
    labels: tuple[str, ...],
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    source_repository: str,
    source_commit: str,
    source_path: str,
    datasets: tuple[str, ...],
    produced_by: tuple[VersionSpec, ...],
) -> None:
    """Create a DRAFT version of MODEL (upload files, then seal it)."""
    source = (source_repository, source_commit, source_path)
    created = session.client.create_version(
        model.removeprefix("models/"),
        description=description,
        type=type_,
        author=author,
        labels=key_values(labels),
        metrics=metric_values(metrics),
        parameters=param_values(params) if params else None,
        source=list(source) if any(source) else None,
        datasets=list(datasets) or None,
        produced_by=[(p.model, p.version) for p in produced_by] or None,
    )
    _show(session, created)


@versions.command("update")
@click.argument("version", **VERSION)
@click.option("--description")
@click.option("--type", "type_")
@click.option("--author")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set a label.")
@click.option("--remove-label", "removed_labels", multiple=True, metavar="KEY")
@click.option("--metric", "metrics", multiple=True, metavar="KEY=NUMBER", help="Set a metric.")
@click.option("--remove-metric", "removed_metrics", multiple=True, metavar="KEY")
@click.option("--etag", default="")
@pass_session
def update_version(
    session: Session,
    version: VersionSpec,
    description: str | None,
    type_: str | None,
    author: str | None,
    labels: tuple[str, ...],
    removed_labels: tuple[str, ...],
    metrics: tuple[str, ...],
    removed_metrics: tuple[str, ...],
    etag: str,
) -> None:
    """Change the given editable fields of a version (sealed ones too)."""
    current = session.client.get_version(version.model, version.version)
    update = res.ModelVersion(name=current.name, etag=etag)
    mask: list[str] = []
    for name, value in (("description", description), ("type", type_), ("author", author)):
        if value is not None:
            setattr(update, name, value)
            mask.append(name)
    for key, text in key_values(labels).items():
        update.labels[key] = text
        mask.append(f"labels.{key}")
    for key, number in metric_values(metrics).items():
        update.metrics[key] = number
        mask.append(f"metrics.{key}")
    mask.extend(f"labels.{key}" for key in removed_labels)
    mask.extend(f"metrics.{key}" for key in removed_metrics)
    if not mask:
        raise click.UsageError("nothing to update: give at least one field option")
    _show(session, session.client.update_version(update, update_mask=mask))


@versions.command("seal")
@click.argument("version", **VERSION)
@click.option("--cancel-uploads", is_flag=True, help="End unfinished uploads into it.")
@click.option("--etag", default="")
@pass_session
def seal_version(session: Session, version: VersionSpec, cancel_uploads: bool, etag: str) -> None:
    """Seal a DRAFT version: its files become immutable and it becomes READY."""
    sealed = session.client.seal_version(
        version.model, version.version, etag=etag, cancel_uploads=cancel_uploads
    )
    _show(session, sealed)


@versions.command("stage")
@click.argument("version", **VERSION)
@click.argument("stage", type=click.Choice(STAGES, case_sensitive=False))
@click.option("--comment", default="")
@click.option("--archive-existing", is_flag=True, help="Archive the versions now in STAGE.")
@click.option("--etag", default="")
@pass_session
def stage_version(
    session: Session,
    version: VersionSpec,
    stage: str,
    comment: str,
    archive_existing: bool,
    etag: str,
) -> None:
    """Move a version to STAGE (recorded with you as the actor)."""
    moved = session.client.transition_stage(
        version.model,
        version.version,
        stage,
        comment=comment,
        etag=etag,
        archive_existing=archive_existing,
    )
    _show(session, moved)


@versions.command("transitions")
@click.argument("version", **VERSION)
@pass_session
def list_transitions(session: Session, version: VersionSpec) -> None:
    """The stage history of a version, oldest first. JSON: {"stage_transitions": [...]}."""
    data = [
        to_data(t) for t in session.client.list_stage_transitions(version.model, version.version)
    ]
    rows = [
        [when(t["transition_time"]), t["from_stage"], t["to_stage"], t["actor"], t["comment"]]
        for t in data
    ]
    table = Table(("time", "from", "to", "actor", "comment"), rows)
    session.output.result({"stage_transitions": data}, table)


@versions.command("delete")
@click.argument("version", **VERSION)
@click.option("--force", is_flag=True, help="Even if live versions were produced by it.")
@click.option("--etag", default="")
@pass_session
def delete_version(session: Session, version: VersionSpec, force: bool, etag: str) -> None:
    """Soft-delete a version (its aliases are removed)."""
    _show(
        session,
        session.client.delete_version(version.model, version.version, etag=etag, force=force),
    )


@versions.command("undelete")
@click.argument("version", **VERSION)
@click.option("--etag", default="")
@pass_session
def undelete_version(session: Session, version: VersionSpec, etag: str) -> None:
    """Restore a soft-deleted version."""
    _show(session, session.client.undelete_version(version.model, version.version, etag=etag))


# --- compare -----------------------------------------------------------------------------------

_HEADLINE = ("state", "stage", "type", "author")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(f"{prefix}.{key}", value[key], out)
    else:
        out[prefix] = value


def compare_rows(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per field of any of the versions: its values (None where a version lacks
    it) and whether they differ: state, stage, type, author, then ``params.*`` (nested
    parameters flattened with dots), then ``metrics.*``."""
    flat: list[dict[str, Any]] = []
    for v in data:
        fields: dict[str, Any] = {key: v[key] for key in _HEADLINE}
        params: dict[str, Any] = {}
        _flatten("params", v["parameters"], params)
        params.pop("params", None)  # no parameters at all
        fields.update(params)
        fields.update({f"metrics.{k}": m for k, m in v["metrics"].items()})
        flat.append(fields)
    keys = list(_HEADLINE)
    for group in ("params.", "metrics."):
        keys += sorted({k for f in flat for k in f if k.startswith(group)})
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        rows.append({"field": key, "values": values, "differs": len({cell(x) for x in values}) > 1})
    return rows


@versions.command("compare")
@click.argument("specs", nargs=-1, required=True, metavar="VERSION VERSION...")
@click.option("--differences", "only_differences", is_flag=True, help="Only fields that differ.")
@pass_session
def compare_versions(session: Session, specs: tuple[str, ...], only_differences: bool) -> None:
    """Parameters and metrics of versions side by side; '*' marks fields whose values differ.
    After the first, a bare N, :N or @ALIAS means the same model (fraud:3 4 @production).
    JSON: {"versions": [names], "fields": [{"field", "values", "differs"}]}."""
    try:
        refs = parse_versions(specs)
    except click.BadParameter as e:
        raise click.BadParameter(e.message, param_hint="VERSION") from None
    if len(refs) < 2:
        raise click.UsageError("compare needs at least two versions")
    found = [session.client.get_version(r.model, r.version) for r in refs]
    data = [to_data(v) for v in found]
    rows = compare_rows(data)
    if only_differences:
        rows = [r for r in rows if r["differs"]]
    headers = []
    for ref, v in zip(refs, data, strict=True):
        name = short_name(v["name"])
        headers.append(name if isinstance(ref.version, int) else f"{name} ({ref})")
    table = Table(
        ["", "field", *headers],
        [["*" if r["differs"] else "", r["field"]] + [cell(x) for x in r["values"]] for r in rows],
        styles=["bold yellow" if r["differs"] else "" for r in rows],
    )
    session.output.result({"versions": [v["name"] for v in data], "fields": rows}, table)
