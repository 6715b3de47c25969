"""Expand then contract: a migration only adds (tables, nullable or defaulted columns,
indexes), so replicas of the previous release keep working on the migrated schema during a
rolling upgrade; a step that drops, renames or tightens must say so (``contract=True``) and may
only remove what the previous release no longer uses (see docs/design.md "Uploads that survive
their replica" and the README's upgrade steps)."""

from __future__ import annotations

import re

import pytest

from modelregistry_server.storage.metadata.migrations import MIGRATIONS, Migration

# Statements that break a reader or writer of the previous release.
_DROP = re.compile(r"\bDROP\s+(TABLE|INDEX|COLUMN|CONSTRAINT)\b", re.I)
_RENAME = re.compile(r"\bRENAME\b", re.I)
_SET_NOT_NULL = re.compile(r"\bALTER\s+COLUMN\b.*\bSET\s+NOT\s+NULL\b", re.I | re.S)
_ALTER_TYPE = re.compile(r"\bALTER\s+COLUMN\b.*\bTYPE\b", re.I | re.S)
_ADD_COLUMN = re.compile(r"\bADD\s+COLUMN\b(?P<rest>.*)", re.I | re.S)
_NOT_NULL = re.compile(r"\bNOT\s+NULL\b", re.I)
_DEFAULT = re.compile(r"\bDEFAULT\b", re.I)
_UNIQUE_ON_OLD = re.compile(r"\bCREATE\s+UNIQUE\s+INDEX\b", re.I)


def breaking(statement: str) -> str | None:
    """Why ``statement`` would break the previous release, or None if it only expands."""
    if _DROP.search(statement):
        return "drops"
    if _RENAME.search(statement):
        return "renames"
    if _SET_NOT_NULL.search(statement):
        return "makes a column NOT NULL"
    if _ALTER_TYPE.search(statement):
        return "changes a column's type"
    added = _ADD_COLUMN.search(statement)
    if added and _NOT_NULL.search(added["rest"]) and not _DEFAULT.search(added["rest"]):
        return "adds a NOT NULL column without a default"
    return None


def _new_tables(statements: list[str]) -> set[str]:
    return {
        m.group(1).lower()
        for s in statements
        for m in [re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", s, re.I)]
        if m
    }


def violations(step: Migration) -> list[str]:
    """What in ``step`` is not an expansion, for each dialect."""
    found = []
    for dialect in ("sqlite", "postgresql"):
        statements = step.statements(dialect)
        fresh = _new_tables(statements)
        for statement in statements:
            why = breaking(statement)
            unique = _UNIQUE_ON_OLD.search(statement)
            if why is None and unique:
                table = re.search(r"\bON\s+(\w+)", statement, re.I)
                if table and table.group(1).lower() not in fresh and step.version > 1:
                    why = "adds a unique index to an existing table"
            if why is not None:
                found.append(f"{dialect}: {why}: {' '.join(statement.split())[:120]}")
    return found


@pytest.mark.parametrize("step", MIGRATIONS, ids=lambda s: f"v{s.version}")
def test_every_migration_only_expands_unless_marked_contract(step: Migration) -> None:
    found = violations(step)
    if step.contract:
        assert found, f"migration {step.version} is marked contract but only expands"
    else:
        assert not found, (
            f"migration {step.version} is not an expansion; split it (expand now, contract in "
            f"a later release) or mark it contract=True: {found}"
        )


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("DROP TABLE models", "drops"),
        ("ALTER TABLE uploads DROP COLUMN owner", "drops"),
        ("ALTER TABLE x RENAME TO y", "renames"),
        ("ALTER TABLE x RENAME COLUMN a TO b", "renames"),
        ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", "makes a column NOT NULL"),
        ("ALTER TABLE t ALTER COLUMN c TYPE TEXT", "changes a column's type"),
        ("ALTER TABLE t ADD COLUMN c TEXT NOT NULL", "adds a NOT NULL column without a default"),
        ("ALTER TABLE t ADD COLUMN c TEXT NOT NULL DEFAULT ''", None),
        ("ALTER TABLE t ADD COLUMN c BIGINT", None),
        ("CREATE INDEX i ON t (a)", None),
        ("CREATE TABLE t (a TEXT NOT NULL)", None),
    ],
)
def test_the_rule_tells_expansions_from_contractions(statement: str, why: str | None) -> None:
    assert breaking(statement) == why
