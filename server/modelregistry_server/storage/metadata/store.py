"""The peewee adapter of the metadata ports (SQLite and PostgreSQL), composed of one part per
port: :mod:`.models`, :mod:`.versions`, :mod:`.lineage`, :mod:`.aliases`, :mod:`.transitions`,
:mod:`.request_log`, :mod:`.policies`, :mod:`.files`, :mod:`.uploads`, :mod:`.blob_refs`,
:mod:`.blob_integrity`, :mod:`.purge`, :mod:`.statistics`, :mod:`.secrets`, :mod:`.api_keys`,
:mod:`.events` and :mod:`.webhooks`, on the shared :class:`~.core.StoreCore` (scopes,
lookups; see its docstring).

Not written by the save methods: identity columns, ``Model.latest_version_number`` (owned by
``allocate_version_number``) and ``ModelVersion.aliases`` (owned by the alias methods). Blob
digests are the ``sha256`` strings of file records.
"""

from __future__ import annotations

from .aliases import AliasRows
from .api_keys import ApiKeyRows
from .blob_integrity import BlobIntegrityRows
from .blob_refs import BlobRefRows
from .events import EventRows
from .files import FileRows
from .leases import LeaseRows
from .lineage import LineageRows
from .models import ModelRows
from .policies import PolicyRows
from .purge import PurgeRows
from .request_log import RequestRows
from .secrets import SecretRows
from .statistics import StatisticsRows
from .transitions import TransitionRows
from .uploads import UploadRows
from .versions import VersionRows
from .webhooks import WebhookRows


class PeeweeMetadataStore(
    ModelRows,
    LineageRows,
    VersionRows,
    AliasRows,
    TransitionRows,
    RequestRows,
    PolicyRows,
    FileRows,
    UploadRows,
    BlobRefRows,
    BlobIntegrityRows,
    PurgeRows,
    StatisticsRows,
    SecretRows,
    ApiKeyRows,
    EventRows,
    WebhookRows,
    LeaseRows,
):
    """Registry rows in a SQL database through peewee (see the module docstring)."""
