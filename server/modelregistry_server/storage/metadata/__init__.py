"""The metadata store adapter: registry rows in SQLite or PostgreSQL through peewee."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .database import DatabaseInUseError, open_database
from .errors import StoreError, translated
from .migrations import (
    SchemaNotCurrentError,
    SchemaTooNewError,
    check_current,
    migrate,
    schema_version,
)
from .store import PeeweeMetadataStore

if TYPE_CHECKING:
    from ...domain.ports import MetadataStore

    _conforms: type[MetadataStore] = PeeweeMetadataStore  # the adapter implements the port

__all__ = [
    "DatabaseInUseError",
    "PeeweeMetadataStore",
    "SchemaNotCurrentError",
    "SchemaTooNewError",
    "StoreError",
    "migrate_database",
    "open_metadata_store",
]


def open_metadata_store(
    url: str,
    *,
    max_connections: int = 32,
    migrate_schema: bool = True,
    shared: bool = False,
) -> PeeweeMetadataStore:
    """Open the store at ``url`` and bring its schema up to date (``migrate_schema=False``:
    only check that it is, raising :class:`SchemaNotCurrentError` if migrations are pending).

    URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the parent
    directory is created), ``postgresql://user:pass@host:port/dbname`` (or ``postgres://``).
    Raises ``ValueError`` for a malformed URL, ``Unavailable`` if the database cannot be
    reached, :class:`DatabaseInUseError` if another process holds the SQLite file and
    :class:`SchemaTooNewError` if a newer release migrated it. ``shared``: SQLite is opened
    for several processes (the workers of one supervisor, see ``open_database``).
    """
    backend = open_database(url, max_connections=max_connections, shared=shared)
    try:
        with translated():
            if migrate_schema:
                migrate(backend)
            else:
                check_current(backend)
    except BaseException:
        backend.close()
        raise
    return PeeweeMetadataStore(backend)


def migrate_database(url: str) -> tuple[int, int]:
    """Apply the pending migrations to the database at ``url`` (``modelregistry-server
    migrate``); returns the schema version before and after. Raises like
    :func:`open_metadata_store`."""
    backend = open_database(url, max_connections=1)
    try:
        with translated():
            before = schema_version(backend)
            after = migrate(backend)
    finally:
        backend.close()
    return before, after
