"""``modelregistry events …``: list the event log, or watch it (resumable by cursor)."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from modelregistry.cli.commands.common import filter_option, limit_option, limited, order_by_option
from modelregistry.cli.data import to_data
from modelregistry.cli.output import Table, when
from modelregistry.cli.session import Session, pass_session

__all__ = ["events"]


def _line(cursor: str, e: dict[str, Any]) -> str:
    parts = [cursor, when(e["event_time"]), e["kind"], e["principal"], e["method"], e["resource"]]
    if e["outcome"]:
        parts.append(e["outcome"])
    return "  ".join(parts)


@click.group()
def events() -> None:
    """The event log: who changed what (list, watch)."""


@events.command("list")
@filter_option
@order_by_option
@limit_option
@pass_session
def list_events(session: Session, filter_: str, order_by: str, limit: int) -> None:
    """Events, oldest first (--order-by 'sequence desc': newest first). E.g. --filter
    'resource = "models/fraud*" AND kind = CHANGE'. JSON: {"events": [...]}."""
    found = limited(session.client.list_events(filter=filter_, order_by=order_by), limit)
    data = [to_data(e) for e in found]
    rows = [
        [str(e["sequence"]), when(e["event_time"]), e["kind"], e["principal"], e["method"],
         e["resource"], e["outcome"]]
        for e in data
    ]  # fmt: skip
    columns = ("seq", "time", "kind", "principal", "method", "resource", "outcome")
    session.output.result({"events": data}, Table(columns, rows))


@events.command("watch")
@filter_option
@click.option(
    "--after",
    "after",
    default="",
    metavar="CURSOR",
    help="Continue after this cursor (events/N; events/0: from the start) [default: new only].",
)
@click.option("--limit", type=click.IntRange(min=0), default=0, help="Stop after N events.")
@pass_session
def watch_events(session: Session, filter_: str, after: str, limit: int) -> None:
    """Follow the event log as it is written, reconnecting by itself. Each event is printed
    with its cursor (JSON: one {"cursor", "event"} object per line); pass the last one to
    --after to continue without gaps or repeats. Ends with Ctrl-C (status 130) or --limit."""
    watch = session.client.watch_events(filter=filter_, after_cursor=after)
    seen = 0
    try:
        with contextlib.closing(watch):
            for event in watch:
                data = to_data(event)
                session.output.item(
                    {"cursor": watch.cursor, "event": data}, _line(watch.cursor, data)
                )
                seen += 1
                if limit and seen >= limit:
                    break
    finally:
        if watch.cursor:
            session.output.note(f"continue with: --after {watch.cursor}")
