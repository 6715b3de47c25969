"""``modelregistry aliases …``: list, show, set, delete, history."""

from __future__ import annotations

from datetime import datetime

import click

from modelregistry.cli.commands.common import limit_option, limited
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, when
from modelregistry.cli.session import Session, pass_session
from modelregistry.client import alias_name, parse_alias_name

__all__ = ["aliases"]


def _version_text(name: str) -> str:
    """``models/m/versions/3`` → ``3`` ("" stays "")."""
    return name.rsplit("/", 1)[-1] if name else ""


def _alias_text(name: str) -> str:
    return parse_alias_name(name).alias if name.startswith("models/") else name


def _show(session: Session, data: dict[str, object]) -> None:
    session.output.result(data, Table.fields(data))


@click.group()
def aliases() -> None:
    """Aliases (production, staging …): list, show, set, delete, history."""


@aliases.command("list")
@click.argument("model")
@pass_session
def list_aliases(session: Session, model: str) -> None:
    """The aliases of MODEL. JSON: {"aliases": [...]}."""
    data = [to_data(a) for a in session.client.list_aliases(model)]
    rows = [
        [_alias_text(a["name"]), _version_text(a["version"]), when(a["update_time"])] for a in data
    ]
    session.output.result({"aliases": data}, Table(("alias", "version", "since"), rows))


@aliases.command("show")
@click.argument("model")
@click.argument("alias")
@click.option("--at", "read_time", type=click.DateTime(), help="Where it pointed then (UTC).")
@pass_session
def show_alias(session: Session, model: str, alias: str, read_time: datetime | None) -> None:
    """Where ALIAS points (now, or --at a past time)."""
    _show(session, to_data(session.client.get_alias(model, alias, read_time=read_time)))


@aliases.command("set")
@click.argument("model")
@click.argument("alias")
@click.argument("version")
@pass_session
def set_alias(session: Session, model: str, alias: str, version: str) -> None:
    """Point ALIAS at VERSION (a number, latest, or another alias) of MODEL; it must be READY."""
    target: int | str = int(version) if version.isdigit() else version
    _show(session, to_data(session.client.set_alias(model, alias, target)))


@aliases.command("delete")
@click.argument("model")
@click.argument("alias")
@pass_session
def delete_alias(session: Session, model: str, alias: str) -> None:
    """Remove ALIAS. JSON: {"deleted": "models/M/aliases/A"}."""
    session.client.delete_alias(model, alias)
    name = alias_name(model.removeprefix("models/"), alias)
    session.output.result({"deleted": name}, Table(("deleted",), [[name]]))


@aliases.command("history")
@click.argument("model")
@click.argument("alias", required=False, default="")
@limit_option
@pass_session
def alias_history(session: Session, model: str, alias: str, limit: int) -> None:
    """Every move of ALIAS (or of every alias of MODEL), oldest first, with who moved it.
    JSON: {"alias_moves": [...]}."""
    moves = limited(session.client.list_alias_history(model, alias), limit)
    data = [to_data(m) for m in moves]
    rows = [
        [
            when(m["move_time"]),
            _alias_text(m["alias"]),
            _version_text(m["version"]) or "(removed)",
            m["principal"],
            m["method"],
        ]
        for m in data
    ]
    table = Table(("time", "alias", "version", "principal", "method"), rows)
    session.output.result({"alias_moves": data}, table)
