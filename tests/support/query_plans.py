"""The statements a store call sends and their query plans (EXPLAIN QUERY PLAN on SQLite,
EXPLAIN on PostgreSQL), for tests that assert which index a query uses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelregistry_server.storage.metadata import PeeweeMetadataStore


class Statements(logging.Handler):
    """Collects the (sql, params) peewee logs for every statement it runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql, params = record.msg
            self.seen.append((sql, tuple(params or ())))


@contextmanager
def statements() -> Iterator[Statements]:
    """Record the statements peewee sends inside the block."""
    logger = logging.getLogger("peewee")
    handler, level = Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def plan(store: PeeweeMetadataStore, sql: str, params: tuple[Any, ...]) -> str:
    """The query plan of one statement, as text."""
    db: Any = store.backend.database
    explain = "EXPLAIN QUERY PLAN" if store.backend.dialect == "sqlite" else "EXPLAIN"
    with store.connection():
        rows = db.execute_sql(f"{explain} {sql}", params).fetchall()
    return "\n".join(str(r[-1]) for r in rows)
