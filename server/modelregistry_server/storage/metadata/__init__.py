"""The metadata store adapter: registry rows in SQLite or PostgreSQL through peewee."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .database import DatabaseInUseError, open_database
from .errors import StoreError, translated
from .migrations import SchemaTooNewError, migrate
from .store import PeeweeMetadataStore

if TYPE_CHECKING:
    from ...domain.ports import MetadataStore

    _conforms: type[MetadataStore] = PeeweeMetadataStore  # the adapter implements the port

__all__ = [
    "DatabaseInUseError",
    "PeeweeMetadataStore",
    "SchemaTooNewError",
    "StoreError",
    "open_metadata_store",
]


def open_metadata_store(
    url: str, *, max_connections: int = 32, shared: bool = False
) -> PeeweeMetadataStore:
    """Open the store at ``url`` and bring its schema up to date.

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
            migrate(backend)
    except BaseException:
        backend.close()
        raise
    return PeeweeMetadataStore(backend)
