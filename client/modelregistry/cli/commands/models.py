"""``modelregistry models …``: list, show, create, update, delete, undelete."""

from __future__ import annotations

from typing import Any

import click

from modelregistry.cli.commands.common import (
    filter_option,
    key_values,
    limit_option,
    limited,
    order_by_option,
)
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, cell, when
from modelregistry.cli.session import Session, pass_session
from modelregistry.v1 import resources_pb2 as res

__all__ = ["models"]

_SHOW = (
    "name", "display_name", "description", "type", "author", "labels", "latest_version_number",
    "create_time", "update_time", "delete_time", "purge_time", "etag", "uid",
)  # fmt: skip


def _model_id(name: str) -> str:
    return name.removeprefix("models/")


def _show(session: Session, model: res.Model) -> None:
    data = to_data(model)
    session.output.result(data, Table.fields(data, _SHOW))


@click.group()
def models() -> None:
    """Models: list, show, create, update, delete, undelete."""


@models.command("list")
@filter_option
@order_by_option
@click.option("--show-deleted", is_flag=True, help="Include soft-deleted models.")
@limit_option
@pass_session
def list_models(
    session: Session, filter_: str, order_by: str, show_deleted: bool, limit: int
) -> None:
    """List models (JSON: {"models": [...]})."""
    found = limited(
        session.client.list_models(filter=filter_, order_by=order_by, show_deleted=show_deleted),
        limit,
    )
    data = [to_data(m) for m in found]
    columns = ["model", "display name", "type", "author", "labels", "updated"]
    if show_deleted:
        columns.append("deleted")
    rows = []
    for m in data:
        row = [
            _model_id(m["name"]), m["display_name"], m["type"], m["author"],
            cell(m["labels"]), when(m["update_time"]),
        ]  # fmt: skip
        if show_deleted:
            row.append(when(m["delete_time"]))
        rows.append(row)
    session.output.result({"models": data}, Table(columns, rows))


@models.command("show")
@click.argument("model")
@pass_session
def show_model(session: Session, model: str) -> None:
    """Show a model (soft-deleted ones too)."""
    _show(session, session.client.get_model(model))


@models.command("create")
@click.argument("model")
@click.option("--display-name", default="")
@click.option("--description", default="")
@click.option("--type", "type_", default="", help="e.g. classifier.")
@click.option("--author", default="")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@pass_session
def create_model(
    session: Session,
    model: str,
    display_name: str,
    description: str,
    type_: str,
    author: str,
    labels: tuple[str, ...],
) -> None:
    """Register a model (MODEL: its id, [a-z][a-z0-9-]{0,62})."""
    created = session.client.create_model(
        model,
        display_name=display_name,
        description=description,
        type=type_,
        author=author,
        labels=key_values(labels),
    )
    _show(session, created)


@models.command("update")
@click.argument("model")
@click.option("--display-name")
@click.option("--description")
@click.option("--type", "type_")
@click.option("--author")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set a label.")
@click.option("--remove-label", "removed", multiple=True, metavar="KEY", help="Remove a label.")
@click.option("--etag", default="", help="Fail (exit 6) if the model changed since this etag.")
@pass_session
def update_model(
    session: Session,
    model: str,
    display_name: str | None,
    description: str | None,
    type_: str | None,
    author: str | None,
    labels: tuple[str, ...],
    removed: tuple[str, ...],
    etag: str,
) -> None:
    """Change the given fields of a model (only those: the update mask)."""
    update = res.Model(name=f"models/{_model_id(model)}", etag=etag)
    mask: list[str] = []
    fields: dict[str, Any] = {
        "display_name": display_name,
        "description": description,
        "type": type_,
        "author": author,
    }
    for name, value in fields.items():
        if value is not None:
            setattr(update, name, value)
            mask.append(name)
    for key, value in key_values(labels).items():
        update.labels[key] = value
        mask.append(f"labels.{key}")
    mask.extend(f"labels.{key}" for key in removed)
    if not mask:
        raise click.UsageError("nothing to update: give at least one field option")
    _show(session, session.client.update_model(update, update_mask=mask))


@models.command("delete")
@click.argument("model")
@click.option("--force", is_flag=True, help="Also delete its live versions.")
@click.option("--etag", default="")
@pass_session
def delete_model(session: Session, model: str, force: bool, etag: str) -> None:
    """Soft-delete a model (restore it with undelete until it is purged)."""
    _show(session, session.client.delete_model(model, etag=etag, force=force))


@models.command("undelete")
@click.argument("model")
@click.option("--etag", default="")
@pass_session
def undelete_model(session: Session, model: str, etag: str) -> None:
    """Restore a soft-deleted model."""
    _show(session, session.client.undelete_model(model, etag=etag))
