"""Ports: what the domain needs from storage, in the domain's words.

Each port is a small Protocol holding one cohesive group of operations; a use case depends
only on the ports it uses. Adapters live in ``storage/``; one contract test suite per adapter
runs over every backend.

- :mod:`.scopes`: :class:`Transactions` (write transactions and connection scopes).
- :mod:`.catalog`: :class:`ModelCatalog`, :class:`VersionCatalog`, :class:`AliasBook`,
  :class:`StageHistory`, :class:`RequestLog`, :class:`Purger` (the registry's rows).
- :mod:`.files`: :class:`FileCatalog`, :class:`UploadSessions`, :class:`BlobReferences`,
  :class:`BlobIntegrity` (files of versions, upload sessions, blob bookkeeping for dedup and
  GC, block sums and integrity state of blobs).
- :mod:`.blobs`: :class:`BlobReader` (reading blobs), :class:`UploadStaging` (resumable
  uploads that become blobs) and :class:`BlobInventory` (listing and deleting, for GC).
- :mod:`.lineage`: :class:`LineageIndex` (versions by what they came from or feed, and by
  dataset).
- :mod:`.metadata`: :class:`MetadataStore`, every metadata port in one (what an adapter
  provides and the wiring holds); :class:`~.blobs.BlobStore` likewise for bytes.
- :mod:`.policies`: :class:`ModelPolicies` (per-model access policies and the visibility
  they give members).
- :mod:`.secrets`: :class:`ServerSecrets` (random secrets made once per database).
- :mod:`.api_keys`: :class:`ApiKeyBook` (API keys: hashes of their secrets, scopes, times).
- :mod:`.events`: :class:`EventLog` (the hash-chained record of change, per tenant).
- :mod:`.wakeups`: :class:`EventWakeups` (a hint that events committed, here or on another
  replica).
- :mod:`.webhooks`: :class:`WebhookBook` (webhooks, their deliveries, attempts and leases).
- :mod:`.leases`: :class:`LeaseBook` (named leases: one holder at a time across processes).
- :mod:`.queries`: value types the ports take and return.

Conventions for every adapter:
- Every query is scoped by ``tenant``.
- A backend that cannot be reached raises :class:`~..errors.Unavailable`; no driver exception
  escapes an adapter.
- Soft-deleted rows are returned by ``get_*``; the domain decides what to do with them.
"""

from .api_keys import ApiKeyBook
from .blobs import BlobInventory, BlobReader, BlobStore, StoredObject, UploadStaging
from .catalog import (
    AliasBook,
    AliasHistory,
    ModelCatalog,
    Purger,
    RequestLog,
    StageHistory,
    VersionCatalog,
)
from .events import ALL_EVENTS, EventLog, EventScope
from .files import BlobIntegrity, BlobReferences, FileCatalog, UploadSessions
from .leases import LeaseBook
from .lineage import LineageIndex
from .metadata import MetadataStore
from .policies import ModelPolicies
from .queries import ListQuery, OrderKey, PurgeCounts
from .scopes import Transactions
from .secrets import ServerSecrets
from .wakeups import EventWakeups
from .webhooks import WebhookBook

__all__ = [
    "ALL_EVENTS",
    "AliasBook",
    "AliasHistory",
    "ApiKeyBook",
    "BlobIntegrity",
    "BlobInventory",
    "BlobReader",
    "BlobReferences",
    "BlobStore",
    "EventLog",
    "EventScope",
    "EventWakeups",
    "FileCatalog",
    "LeaseBook",
    "LineageIndex",
    "ListQuery",
    "MetadataStore",
    "ModelCatalog",
    "ModelPolicies",
    "OrderKey",
    "PurgeCounts",
    "Purger",
    "RequestLog",
    "ServerSecrets",
    "StageHistory",
    "StoredObject",
    "Transactions",
    "UploadSessions",
    "UploadStaging",
    "VersionCatalog",
    "WebhookBook",
]
