"""Every metadata port in one: what a metadata adapter provides and the wiring holds."""

from __future__ import annotations

from typing import Protocol

from .api_keys import ApiKeyBook
from .catalog import (
    AliasBook,
    AliasHistory,
    ModelCatalog,
    Purger,
    RequestLog,
    StageHistory,
    VersionCatalog,
)
from .events import EventLog
from .files import BlobIntegrity, BlobReferences, FileCatalog, UploadSessions
from .leases import LeaseBook
from .lineage import LineageIndex
from .policies import ModelPolicies
from .scopes import Transactions
from .secrets import ServerSecrets
from .webhooks import WebhookBook


class MetadataStore(
    Transactions,
    ModelCatalog,
    ModelPolicies,
    VersionCatalog,
    AliasBook,
    AliasHistory,
    StageHistory,
    RequestLog,
    Purger,
    FileCatalog,
    UploadSessions,
    BlobReferences,
    LineageIndex,
    BlobIntegrity,
    ServerSecrets,
    ApiKeyBook,
    EventLog,
    WebhookBook,
    LeaseBook,
    Protocol,
):
    """All metadata ports of one database; use cases take the narrower ports they need."""

    def refresh_statistics(self) -> None:
        """Refresh the statistics the database's query planner chooses indexes by."""
        ...

    def connections_in_use(self) -> tuple[int, int]:
        """Pooled connections checked out now, and the pool's size."""
        ...

    def close(self) -> None:
        """Close every connection (pool included)."""
        ...
