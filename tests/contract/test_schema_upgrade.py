"""Rolling upgrades on both backends: each migration keeps every table and column of the
schema before it, and every column it adds to an existing table is nullable or has a default,
so a replica of the previous release (which names only the old columns) keeps reading and
writing while the new release's replicas roll out. Contract steps (``contract=True``) are the
declared exceptions. ``migrate`` and ``--migrate check`` as commands."""

from __future__ import annotations

from typing import Any

import pytest

from modelregistry_server.__main__ import main
from modelregistry_server.config import Config
from modelregistry_server.storage.metadata import (
    SchemaNotCurrentError,
    SchemaTooNewError,
    migrate_database,
    open_metadata_store,
)
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    migrate,
    schema_version,
)

# table -> column -> (nullable, has a default)
Schema = dict[str, dict[str, tuple[bool, bool]]]


def _schema(db: Any) -> Schema:
    with db.connection_context():
        return {
            table: {
                c.name: (bool(c.null), c.default is not None or c.primary_key)
                for c in db.get_columns(table)
            }
            for table in db.get_tables()
            if table != "schema_version"
        }


def test_each_expanding_step_keeps_the_previous_schema_usable(metadata_url: str) -> None:
    backend = open_database(metadata_url, max_connections=2)
    try:
        migrate(backend, target=1)
        before = _schema(backend.database)
        for step in MIGRATIONS[1:]:
            migrate(backend, target=step.version)
            after = _schema(backend.database)
            problems = []
            for table, columns in before.items():
                if table not in after:
                    problems.append(f"table {table} removed")
                    continue
                problems += [f"{table}.{c} removed" for c in columns if c not in after[table]]
                for name, (nullable, default) in after[table].items():
                    if name not in columns and not (nullable or default):
                        problems.append(f"{table}.{name} added NOT NULL without a default")
                    if name in columns and columns[name][0] and not nullable:
                        problems.append(f"{table}.{name} became NOT NULL")
            if step.contract:
                assert problems, f"migration {step.version} is marked contract but expands"
            else:
                assert not problems, f"migration {step.version}: {problems}"
            before = after
    finally:
        backend.close()


def test_migrate_command_applies_pending_steps_once(
    metadata_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = open_database(metadata_url, max_connections=1)
    try:
        migrate(backend, target=LATEST_VERSION - 1)
    finally:
        backend.close()
    assert main(["migrate", "--database-url", metadata_url]) == 0
    assert f"from version {LATEST_VERSION - 1} to {LATEST_VERSION}" in capsys.readouterr().out
    assert main(["migrate", "--database-url", metadata_url]) == 0
    assert f"schema is current (version {LATEST_VERSION})" in capsys.readouterr().out
    assert migrate_database(metadata_url) == (LATEST_VERSION, LATEST_VERSION)


def test_migrate_command_refuses_a_newer_schema_and_a_bad_url(
    metadata_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database-url", metadata_url]) == 0
    backend = open_database(metadata_url, max_connections=1)
    try:
        with backend.database.connection_context():
            backend.database.execute_sql(
                "INSERT INTO schema_version (version, description) VALUES (999, 'future')"
            )
    finally:
        backend.close()
    capsys.readouterr()
    assert main(["migrate", "--database-url", metadata_url]) == 2
    assert "999" in capsys.readouterr().err
    with pytest.raises(SchemaTooNewError):
        open_metadata_store(metadata_url, migrate_schema=False)
    assert main(["migrate", "--database-url", "mysql://nowhere/db"]) == 2
    assert "cannot migrate" in capsys.readouterr().err


def test_migrate_check_refuses_a_schema_behind_and_changes_nothing(
    metadata_url: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend = open_database(metadata_url, max_connections=1)
    try:
        migrate(backend, target=LATEST_VERSION - 1)
    finally:
        backend.close()
    with pytest.raises(SchemaNotCurrentError, match="modelregistry-server migrate"):
        open_metadata_store(metadata_url, migrate_schema=False)
    args = [
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        metadata_url,
        "--blob-url",
        f"file://{tmp_path / 'blobs'}",
        "--migrate",
        "check",
        "--workers",  # the single process here; --workers 2: tests/api/test_workers_process.py
        "1",
    ]
    assert main(args) == 2
    assert "run `modelregistry-server migrate` first" in caplog.text
    backend = open_database(metadata_url, max_connections=1)
    try:
        assert schema_version(backend) == LATEST_VERSION - 1
    finally:
        backend.close()
    assert main(["migrate", "--database-url", metadata_url]) == 0
    store = open_metadata_store(metadata_url, migrate_schema=False)
    store.close()


def test_migrate_is_a_choice() -> None:
    assert Config().migrate == "auto"
