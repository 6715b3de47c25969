"""The output layer: every command hands its result here as plain data plus, optionally, a
table view; ``--output`` picks how it is written.

- ``table`` (the default): a table for people (rich; colour and the terminal's width only on
  a terminal, plain text at the table's natural width otherwise);
- ``json``: exactly one JSON document on stdout (streams such as ``events watch``: one
  document per line), keys as in :mod:`modelregistry.cli.data`;
- ``yaml``: the same data as YAML (streams: one YAML document each).

Errors and notes go to stderr (as a JSON/YAML document ``{"error": …}`` with json/yaml), so
stdout stays parseable. Cells are text, never rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml
from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

__all__ = ["Output", "Table", "cell", "when"]


def cell(value: Any) -> str:
    """A value as table text: compact JSON for lists and dicts, "" for None and for a dict
    of empty values (an unset message)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        if not value or (isinstance(value, dict) and not any(value.values())):
            return ""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def when(timestamp: str | None) -> str:
    """An RFC 3339 timestamp shortened for a table (``2026-12-01 15:08:39Z``)."""
    if not timestamp:
        return ""
    date, _, rest = timestamp.partition("T")
    return f"{date} {rest[:8]}Z" if rest else timestamp


@dataclass
class Table:
    """A table view: ``columns`` and ``rows`` of text; ``styles`` per row (a rich style or
    "") e.g. to mark differences; ``key_value`` for a single resource's fields."""

    columns: Sequence[str]
    rows: Sequence[Sequence[str]] = ()
    styles: Sequence[str] = ()
    title: str | None = None

    @classmethod
    def fields(cls, data: Mapping[str, Any], keys: Sequence[str] | None = None) -> Table:
        """One resource as ``field value`` rows (``keys``: which, in which order)."""
        rows = [(key, cell(data.get(key))) for key in (keys or list(data))]
        return cls(("field", "value"), rows)


class Output:
    """Writes results, stream items, notes and errors in the chosen format."""

    def __init__(
        self, format: str, *, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.format = format
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The stdout console (plain, unlimited width when stdout is not a terminal)."""
        if self._console is None:
            terminal = self.stdout.isatty()
            self._console = Console(
                file=self.stdout,
                highlight=False,
                emoji=False,
                markup=False,
                width=None if terminal else 1_000_000,
                no_color=not terminal,
                force_terminal=terminal,
            )
        return self._console

    def _dump(self, data: Any, stream: TextIO, *, line: bool = False) -> None:
        if self.format == "yaml":
            if line:
                stream.write("---\n")
            stream.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        elif line:
            stream.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            stream.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        stream.flush()

    def result(self, data: Any, table: Table | None = None) -> None:
        """The command's one result: ``data`` for json/yaml, ``table`` (or ``data`` as
        fields) for people."""
        if self.format != "table":
            self._dump(data, self.stdout)
            return
        if table is None:
            if isinstance(data, Mapping):
                table = Table.fields(data)
            else:
                self.console.print(Text(cell(data)))
                return
        self._print_table(table)

    def _print_table(self, table: Table) -> None:
        view = RichTable(box=box.SIMPLE_HEAD, title=table.title, show_edge=False, pad_edge=False)
        for column in table.columns:
            view.add_column(column, overflow="fold")
        for i, row in enumerate(table.rows):
            style = table.styles[i] if i < len(table.styles) else ""
            view.add_row(*(Text(value) for value in row), style=style or None)
        if not table.rows:
            self.note("(none)")
            return
        self.console.print(view)

    def item(self, data: Any, line: str) -> None:
        """One item of a stream (``events watch``): a JSON line, a YAML document, or
        ``line`` for people; flushed at once."""
        if self.format == "table":
            self.stdout.write(line + "\n")
            self.stdout.flush()
        else:
            self._dump(data, self.stdout, line=True)

    def note(self, text: str) -> None:
        """A remark for people (stderr; not shown with json/yaml)."""
        if self.format == "table":
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, data: Mapping[str, Any], text: str) -> None:
        """A failure: ``{"error": data}`` with json/yaml, else ``text``; on stderr."""
        if self.format == "table":
            self.stderr.write(f"modelregistry: {text}\n")
            self.stderr.flush()
        else:
            self._dump({"error": dict(data)}, self.stderr)
