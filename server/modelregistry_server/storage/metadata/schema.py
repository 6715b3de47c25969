"""Row classes of the metadata store: one peewee model per table, columns only.

The DDL (types, constraints, indexes) lives in :mod:`.migrations`; these classes mirror it so
queries can be built with peewee. They are never bound to a database themselves:
:func:`bind_tables` derives per-store subclasses bound to that store's ``DatabaseProxy``, so
several stores (a SQLite one and a PostgreSQL one, say) coexist in one process.

Times are BIGINT microseconds since the epoch (UTC); JSON-ish values are TEXT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import peewee


class _Row(peewee.Model):
    """Base of every row class."""


class ModelRow(_Row):
    """``models``: one registered model."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    model_id = peewee.TextField()
    uid = peewee.TextField()
    display_name = peewee.TextField()
    description = peewee.TextField()
    type = peewee.TextField()
    author = peewee.TextField()
    create_time = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()
    delete_time = peewee.BigIntegerField(null=True)
    purge_time = peewee.BigIntegerField(null=True)
    revision = peewee.BigIntegerField()
    latest_version_number = peewee.BigIntegerField()
    policy = peewee.TextField(null=True)  # JSON; NULL: no policy, scopes alone decide
    policy_revision = peewee.BigIntegerField()

    class Meta:
        table_name = "models"


class ModelMemberRow(_Row):
    """``model_members``: one binding of a model's policy (member, role), for list filters."""

    tenant = peewee.TextField()
    model_pk = peewee.BigIntegerField()
    member = peewee.TextField()
    role = peewee.TextField()

    class Meta:
        table_name = "model_members"
        primary_key = peewee.CompositeKey("model_pk", "member", "role")


class ModelLabelRow(_Row):
    """``model_labels``: one label of a model."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    key = peewee.TextField()
    value = peewee.TextField()

    class Meta:
        table_name = "model_labels"
        primary_key = peewee.CompositeKey("owner", "key")


class VersionRow(_Row):
    """``versions``: one version; ``model_id`` is copied from the model for listing."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    model_pk = peewee.BigIntegerField()
    model_id = peewee.TextField()
    number = peewee.BigIntegerField()
    uid = peewee.TextField()
    create_time = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()
    description = peewee.TextField()
    type = peewee.TextField()
    author = peewee.TextField()
    inputs = peewee.TextField()
    outputs = peewee.TextField()
    parameters = peewee.TextField()
    # Attribute names that would shadow Model methods (dependencies, alias) get a suffix.
    dependencies_json = peewee.TextField(column_name="dependencies")
    produced_by = peewee.TextField()
    source = peewee.TextField(null=True)
    datasets = peewee.TextField()
    stage = peewee.TextField()
    state = peewee.TextField()
    manifest_digest = peewee.TextField()
    expire_time = peewee.BigIntegerField(null=True)
    delete_time = peewee.BigIntegerField(null=True)
    purge_time = peewee.BigIntegerField(null=True)
    revision = peewee.BigIntegerField()
    file_count = peewee.BigIntegerField()
    total_size = peewee.BigIntegerField()
    transition_seq = peewee.BigIntegerField()
    # Indexed copies of ``source`` (empty without one), for filters.
    source_repository = peewee.TextField()
    source_commit = peewee.TextField()

    class Meta:
        table_name = "versions"


class VersionLabelRow(_Row):
    """``version_labels``: one label of a version."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    key = peewee.TextField()
    value = peewee.TextField()

    class Meta:
        table_name = "version_labels"
        primary_key = peewee.CompositeKey("owner", "key")


class VersionMetricRow(_Row):
    """``version_metrics``: one metric of a version; ``model_pk`` is copied from the version
    so that one model's versions can be walked in the order of a metric (migration 10)."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    key = peewee.TextField()
    value = peewee.DoubleField()
    model_pk = peewee.BigIntegerField()

    class Meta:
        table_name = "version_metrics"
        primary_key = peewee.CompositeKey("owner", "key")


class VersionUpstreamRow(_Row):
    """``version_upstreams``: one entry of a version's ``produced_by`` (a version name)."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    upstream = peewee.TextField()

    class Meta:
        table_name = "version_upstreams"
        primary_key = peewee.CompositeKey("owner", "upstream")


class VersionDatasetRow(_Row):
    """``version_datasets``: one dataset reference of a version, for filters and lineage."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    position = peewee.BigIntegerField()
    uri = peewee.TextField()
    digest = peewee.TextField()

    class Meta:
        table_name = "version_datasets"
        primary_key = peewee.CompositeKey("owner", "position")


class VersionDependencyRow(_Row):
    """``version_dependencies``: the name of one dependency of a version, for filters."""

    tenant = peewee.TextField()
    owner = peewee.BigIntegerField()
    position = peewee.BigIntegerField()
    name = peewee.TextField()

    class Meta:
        table_name = "version_dependencies"
        primary_key = peewee.CompositeKey("owner", "position")


class AliasRow(_Row):
    """``aliases``: a named pointer from a model to one of its version numbers."""

    tenant = peewee.TextField()
    model_pk = peewee.BigIntegerField()
    alias_name = peewee.TextField(column_name="alias")
    version_number = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()

    class Meta:
        table_name = "aliases"
        primary_key = peewee.CompositeKey("model_pk", "alias_name")


class TransitionRow(_Row):
    """``transitions``: one recorded stage change of a version."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    version_pk = peewee.BigIntegerField()
    sequence = peewee.BigIntegerField()
    from_stage = peewee.TextField()
    to_stage = peewee.TextField()
    actor = peewee.TextField()
    comment = peewee.TextField()
    transition_time = peewee.BigIntegerField()

    class Meta:
        table_name = "transitions"


class RequestRow(_Row):
    """``requests``: what an idempotent create produced."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    request_id = peewee.TextField()
    method = peewee.TextField()
    resource_name = peewee.TextField()
    create_time = peewee.BigIntegerField()
    fingerprint = peewee.TextField()

    class Meta:
        table_name = "requests"


class FileRow(_Row):
    """``files``: a visible file of a version; ``sha256`` names its blob."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    version_pk = peewee.BigIntegerField()
    file_id = peewee.TextField()
    size = peewee.BigIntegerField()
    sha256 = peewee.TextField()
    crc32c = peewee.BigIntegerField()
    content_type = peewee.TextField()
    create_time = peewee.BigIntegerField()

    class Meta:
        table_name = "files"


class UploadRow(_Row):
    """``uploads``: a resumable upload session."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    upload_id = peewee.TextField()
    model_id = peewee.TextField()
    version_number = peewee.BigIntegerField()
    file_id = peewee.TextField()
    declared_size = peewee.BigIntegerField(null=True)
    declared_sha256 = peewee.TextField()
    content_type = peewee.TextField()
    committed_size = peewee.BigIntegerField()
    state = peewee.TextField()
    create_time = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()
    owner = peewee.TextField()  # the principal that opened it ('' before identity existed)
    # The writer's lease (migration 12; NULL: never leased, e.g. written by release 11).
    lease_holder = peewee.TextField(null=True)
    lease_token = peewee.BigIntegerField(null=True)
    lease_expire = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "uploads"


class BlobRow(_Row):
    """``blobs``: reference bookkeeping of a content-addressed blob (shared by all tenants)."""

    digest = peewee.TextField(primary_key=True)
    size = peewee.BigIntegerField()
    touch_time = peewee.BigIntegerField()
    block_size = peewee.BigIntegerField(null=True)
    block_crc32c = peewee.BlobField(null=True)
    verify_state = peewee.TextField()
    verify_time = peewee.BigIntegerField()  # 0: never verified

    class Meta:
        table_name = "blobs"


class ApiKeyRow(_Row):
    """``api_keys``: one API key; only a hash of its secret is stored."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    key_id = peewee.TextField()
    name = peewee.TextField()
    secret_hash = peewee.TextField()
    scopes = peewee.TextField()  # space-separated
    created_by = peewee.TextField()
    create_time = peewee.BigIntegerField()
    expire_time = peewee.BigIntegerField(null=True)
    revoke_time = peewee.BigIntegerField(null=True)
    last_used_time = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "api_keys"


class EventRow(_Row):
    """``events``: one change or refused call, numbered and chained per tenant."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    sequence = peewee.BigIntegerField()
    event_time = peewee.BigIntegerField()
    kind = peewee.TextField()
    principal = peewee.TextField()
    method = peewee.TextField()
    resource = peewee.TextField()
    model_id = peewee.TextField()  # of the resource (``models/{m}/…``), '' otherwise
    outcome = peewee.TextField()
    request_id = peewee.TextField()
    etag_before = peewee.TextField()
    etag_after = peewee.TextField()
    summary = peewee.TextField()  # JSON object
    prev_hash = peewee.TextField()
    hash = peewee.TextField()

    class Meta:
        table_name = "events"


class AliasHistoryRow(_Row):
    """``alias_history``: one move of an alias (``version_number`` NULL: removed)."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    model_id = peewee.TextField()
    alias_name = peewee.TextField(column_name="alias")
    version_number = peewee.BigIntegerField(null=True)
    move_time = peewee.BigIntegerField()
    principal = peewee.TextField()
    method = peewee.TextField()

    class Meta:
        table_name = "alias_history"


class EventHeadRow(_Row):
    """``event_heads``: a tenant's last event and its chain's anchor."""

    tenant = peewee.TextField(primary_key=True)
    last_sequence = peewee.BigIntegerField()
    last_hash = peewee.TextField()
    anchor_sequence = peewee.BigIntegerField()
    anchor_hash = peewee.TextField()

    class Meta:
        table_name = "event_heads"


class WebhookRow(_Row):
    """``webhooks``: one endpoint of a tenant (its secret sealed)."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    webhook_id = peewee.TextField()
    uid = peewee.TextField()
    url = peewee.TextField()
    event_filter = peewee.TextField()
    description = peewee.TextField()
    enabled = peewee.BooleanField()
    event_cursor = peewee.BigIntegerField()
    created_by = peewee.TextField()
    create_time = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()
    secret_time = peewee.BigIntegerField()
    sealed_secret = peewee.TextField()
    revision = peewee.BigIntegerField()

    class Meta:
        table_name = "webhooks"


class WebhookDeliveryRow(_Row):
    """``webhook_deliveries``: one event queued for one webhook, with its lease."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    webhook_pk = peewee.BigIntegerField()
    delivery_id = peewee.TextField()
    event_sequence = peewee.BigIntegerField()
    state = peewee.TextField()
    attempt_count = peewee.BigIntegerField()
    budget_start = peewee.BigIntegerField()
    next_attempt_time = peewee.BigIntegerField()
    create_time = peewee.BigIntegerField()
    update_time = peewee.BigIntegerField()
    lease_token = peewee.TextField()
    lease_expire = peewee.BigIntegerField()

    class Meta:
        table_name = "webhook_deliveries"


class WebhookAttemptRow(_Row):
    """``webhook_attempts``: one POST of a delivery."""

    id = peewee.BigAutoField()
    tenant = peewee.TextField()
    delivery_pk = peewee.BigIntegerField()
    number = peewee.BigIntegerField()
    attempt_time = peewee.BigIntegerField()
    status_code = peewee.BigIntegerField()
    error = peewee.TextField()
    duration_ms = peewee.BigIntegerField()

    class Meta:
        table_name = "webhook_attempts"


R = TypeVar("R", bound=_Row)


@dataclass(frozen=True)
class Tables:
    """The row classes of one store, bound to its database proxy."""

    models: type[ModelRow]
    model_labels: type[ModelLabelRow]
    versions: type[VersionRow]
    version_labels: type[VersionLabelRow]
    version_metrics: type[VersionMetricRow]
    version_upstreams: type[VersionUpstreamRow]
    version_datasets: type[VersionDatasetRow]
    version_dependencies: type[VersionDependencyRow]
    aliases: type[AliasRow]
    transitions: type[TransitionRow]
    requests: type[RequestRow]
    files: type[FileRow]
    uploads: type[UploadRow]
    blobs: type[BlobRow]
    model_members: type[ModelMemberRow]
    api_keys: type[ApiKeyRow]
    events: type[EventRow]
    event_heads: type[EventHeadRow]
    alias_history: type[AliasHistoryRow]
    webhooks: type[WebhookRow]
    webhook_deliveries: type[WebhookDeliveryRow]
    webhook_attempts: type[WebhookAttemptRow]

    def all(self) -> tuple[type[_Row], ...]:
        """Every row class."""
        return (
            self.models,
            self.model_labels,
            self.versions,
            self.version_labels,
            self.version_metrics,
            self.version_upstreams,
            self.version_datasets,
            self.version_dependencies,
            self.aliases,
            self.transitions,
            self.requests,
            self.files,
            self.uploads,
            self.blobs,
            self.model_members,
            self.api_keys,
            self.events,
            self.event_heads,
            self.alias_history,
            self.webhooks,
            self.webhook_deliveries,
            self.webhook_attempts,
        )


def bind_tables(database: peewee.DatabaseProxy) -> Tables:
    """Subclasses of every row class bound to ``database`` (one set per store)."""
    return Tables(
        models=_bound(ModelRow, database),
        model_labels=_bound(ModelLabelRow, database),
        versions=_bound(VersionRow, database),
        version_labels=_bound(VersionLabelRow, database),
        version_metrics=_bound(VersionMetricRow, database),
        version_upstreams=_bound(VersionUpstreamRow, database),
        version_datasets=_bound(VersionDatasetRow, database),
        version_dependencies=_bound(VersionDependencyRow, database),
        aliases=_bound(AliasRow, database),
        transitions=_bound(TransitionRow, database),
        requests=_bound(RequestRow, database),
        files=_bound(FileRow, database),
        uploads=_bound(UploadRow, database),
        blobs=_bound(BlobRow, database),
        model_members=_bound(ModelMemberRow, database),
        api_keys=_bound(ApiKeyRow, database),
        events=_bound(EventRow, database),
        event_heads=_bound(EventHeadRow, database),
        alias_history=_bound(AliasHistoryRow, database),
        webhooks=_bound(WebhookRow, database),
        webhook_deliveries=_bound(WebhookDeliveryRow, database),
        webhook_attempts=_bound(WebhookAttemptRow, database),
    )


def _bound(base: type[R], database: peewee.DatabaseProxy) -> type[R]:
    meta: dict[str, Any] = {"database": database, "table_name": base._meta.table_name}
    namespace = {"Meta": type("Meta", (), meta), "__module__": __name__}
    bound: type[R] = type(base.__name__, (base,), namespace)
    return bound
