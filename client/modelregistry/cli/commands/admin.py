"""``modelregistry config show`` and ``modelregistry whoami``."""

from __future__ import annotations

import click

from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, cell
from modelregistry.cli.session import Session, pass_session

__all__ = ["config_group", "whoami"]


@click.group("config")
def config_group() -> None:
    """The settings this invocation would use."""


@config_group.command("show")
@pass_session
def show_config(session: Session) -> None:
    """Show the resolved settings and where each came from (the token is never shown)."""
    data = session.settings.redacted()
    sources = data["sources"]
    rows = [
        (key, cell(value), sources.get(key, "")) for key, value in data.items() if key != "sources"
    ]
    session.output.result(data, Table(("setting", "value", "from"), rows))


@click.command("whoami")
@pass_session
def whoami(session: Session) -> None:
    """Who the server takes this caller for (actor, tenant, scopes)."""
    data = to_data(session.client.get_caller())
    session.output.result(data)
