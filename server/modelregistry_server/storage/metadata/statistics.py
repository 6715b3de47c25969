"""Planner statistics of the metadata database (refreshed by the maintenance schedule)."""

from __future__ import annotations

from typing import Any

from .core import StoreCore
from .errors import translated

ANALYSIS_LIMIT = 1000  # rows SQLite's ANALYZE samples per index


class StatisticsRows(StoreCore):
    """``ANALYZE``, so the query planner knows how selective each index is."""

    def refresh_statistics(self) -> None:
        """Refresh the statistics the query planner chooses indexes by.

        Without them SQLite takes every ``tenant = ?`` for selective and walks a tenant's
        versions in listing order instead of starting from a lineage index. SQLite samples at
        most :data:`ANALYSIS_LIMIT` rows per index and PostgreSQL its default sample, so the
        cost does not grow with the tables.
        """
        db: Any = self._db
        with translated(), db.connection_context():
            if self._backend.dialect == "sqlite":
                db.execute_sql(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            db.execute_sql("ANALYZE")
