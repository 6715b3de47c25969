"""Use cases for models, versions, aliases and stage history.

Each public method is one API operation: it validates input, runs the rules inside one store
transaction where writes must be atomic, and raises only :mod:`.errors` exceptions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from . import names
from .access import Action, Authorizer, decide
from .entities import (
    Alias,
    AliasMove,
    Model,
    ModelVersion,
    Page,
    RequestRecord,
    Stage,
    StageTransition,
    VersionState,
    VersionStatus,
)
from .errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
)
from .events import change, system_change
from .fields import MODEL_FIELDS, VERSION_FIELDS
from .filter_parser import parse_filter
from .identity import Caller
from .lineage import refuse_if_depended_on
from .listing import (
    MODEL_DEFAULT_ORDER,
    MODEL_SCHEMA,
    VERSION_DEFAULT_ORDER,
    VERSION_SCHEMA,
    PageTokens,
    parse_order_by,
    single_cursor,
)
from .paging import Cursor, Pager, read_all
from .policies import ModelPolicy, StoredPolicy
from .ports import (
    AliasBook,
    AliasHistory,
    EventLog,
    LineageIndex,
    ListQuery,
    ModelCatalog,
    ModelPolicies,
    Purger,
    RequestLog,
    StageHistory,
    Transactions,
    VersionCatalog,
)
from .stages import PROMOTIONS, check_transition
from .updates import Mutability, Patch
from .validation import (
    check_count,
    check_labels,
    check_metrics,
    check_text,
)

DEFAULT_RETENTION = timedelta(days=30)


class RegistryStore(
    Transactions,
    ModelCatalog,
    ModelPolicies,
    VersionCatalog,
    AliasBook,
    AliasHistory,
    StageHistory,
    RequestLog,
    Purger,
    LineageIndex,
    EventLog,
    Protocol,
):
    """The metadata ports the registry use cases need."""


def utc_now() -> datetime:
    """Current time, UTC, microsecond precision."""
    return datetime.now(UTC)


class Registry:
    """Models, versions, aliases and stage transitions."""

    def __init__(
        self,
        store: RegistryStore,
        *,
        page_tokens: PageTokens | None = None,
        clock: Callable[[], datetime] = utc_now,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._store = store
        self._auth = Authorizer(store)
        # Without a shared secret, tokens are valid only for this object (tests, tools).
        self._tokens = page_tokens or PageTokens.random()
        self._clock = clock
        self._retention = retention

    @property
    def authorizer(self) -> Authorizer:
        """The authorizer every use case on these stores checks model policies with."""
        return self._auth

    # -- models ------------------------------------------------------------------------------
    def create_model(
        self,
        caller: Caller,
        model_id: str,
        values: dict[str, Any],
        request_id: str = "",
        fingerprint: str = "",
    ) -> Model:
        """Register a model; a retried ``request_id`` returns the first result.

        ``fingerprint`` identifies the request body: the same ``request_id`` with another
        body is INVALID_ARGUMENT (REQUEST_ID_REUSED).
        """
        names.check_model_id(model_id)
        names.check_request_id(request_id)
        fields = MODEL_FIELDS.values(values)
        if request_id:
            earlier = self._replay(caller, request_id, "CreateModel", fingerprint)
            if earlier is not None:
                return self.get_model(caller, names.parse_model_name(earlier))
        now = self._clock()
        model = Model(
            tenant=caller.tenant,
            model_id=model_id,
            uid=str(uuid.uuid4()),
            create_time=now,
            update_time=now,
            **fields,
        )
        try:
            with self._store.transaction():
                self._store.insert_model(model)
                if request_id:
                    self._store.record_request(
                        RequestRecord(
                            caller.tenant,
                            request_id,
                            "CreateModel",
                            names.model_name(model_id),
                            now,
                            fingerprint,
                        )
                    )
                self._store.append_event(
                    change(
                        caller,
                        "CreateModel",
                        names.model_name(model.model_id),
                        now,
                        after=model.etag,
                    )
                )
        except AlreadyExists:
            # A concurrent retry with the same request id won the race: answer as it did.
            earlier = (
                self._replay(caller, request_id, "CreateModel", fingerprint) if request_id else None
            )
            if earlier is None:
                raise
            return self.get_model(caller, names.parse_model_name(earlier))
        return model

    def get_model(self, caller: Caller, model_id: str) -> Model:
        """A model by id (soft-deleted included)."""
        self._auth.require(caller, model_id, Action.READ)
        model = self._store.get_model(caller.tenant, model_id)
        if model is None:
            raise _model_not_found(model_id)
        return model

    def list_models(
        self,
        caller: Caller,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter_text: str = "",
        order_by: str = "",
        show_deleted: bool = False,
    ) -> tuple[list[Model], str]:
        """One page of models and the next page token."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        expr = parse_filter(filter_text, MODEL_SCHEMA)
        order = parse_order_by(order_by, MODEL_SCHEMA, MODEL_DEFAULT_ORDER)
        cursor = pager.cursor("models", filter_text, order, show_deleted)
        query = ListQuery(
            expr, order, show_deleted, pager.size, cursor, self._auth.visible_to(caller)
        )
        return pager.reply(self._store.list_models(caller.tenant, query))

    def update_model(self, caller: Caller, model_id: str, etag: str, patch: Patch) -> Model:
        """Apply the masked fields; ABORTED if ``etag`` is set and stale."""
        paths = MODEL_FIELDS.check_mask(patch.paths)
        changes = MODEL_FIELDS.values(patch.values, only={p.split(".")[0] for p in paths})
        with self._store.transaction():
            self._auth.require(caller, model_id, Action.UPDATE)
            model = self._live_model(caller, model_id, for_update=True)
            check_etag(etag, model.etag, "model.etag")
            before = model.etag
            for path in paths:
                MODEL_FIELDS.apply(model, path, changes)
            # `labels.<key>` paths add entries one by one: the limits hold for the result.
            check_labels(model.labels, "model.labels")
            model.update_time = self._clock()
            model.revision += 1
            self._store.save_model(model)
            self._store.append_event(
                change(
                    caller,
                    "UpdateModel",
                    names.model_name(model.model_id),
                    model.update_time,
                    summary={"update_mask": list(paths)},
                    before=before,
                    after=model.etag,
                )
            )
        return model

    def delete_model(self, caller: Caller, model_id: str, etag: str, force: bool) -> Model:
        """Soft-delete a model (and with ``force`` its live versions)."""
        with self._store.transaction():
            self._auth.require(caller, model_id, Action.DELETE)
            model = self._live_model(caller, model_id, for_update=True)
            check_etag(etag, model.etag, "etag")
            live = self._store.count_versions(caller.tenant, model_id, include_deleted=False)
            if live and not force:
                refuse_if_depended_on(self._store, caller, model_id, None)
                raise FailedPrecondition(
                    f"model {model_id!r} has {live} live version(s); pass force to delete them",
                    reason=Reason.MODEL_HAS_VERSIONS,
                )
            now = self._clock()
            before = model.etag
            if live:
                self._cascade_delete_versions(caller, model_id, now)
            model.delete_time = now
            model.purge_time = now + self._retention
            model.update_time = now
            model.revision += 1
            self._store.save_model(model)
            self._store.append_event(
                change(
                    caller,
                    "DeleteModel",
                    names.model_name(model.model_id),
                    now,
                    summary={"versions_deleted": live},
                    before=before,
                    after=model.etag,
                )
            )
        return model

    def undelete_model(self, caller: Caller, model_id: str, etag: str) -> Model:
        """Restore a soft-deleted model and the versions its forced delete removed."""
        with self._store.transaction():
            self._auth.require(caller, model_id, Action.DELETE)
            model = self._store.get_model(caller.tenant, model_id, for_update=True)
            if model is None:
                raise _model_not_found(model_id)
            check_etag(etag, model.etag, "etag")
            if model.delete_time is None:
                raise FailedPrecondition(
                    f"model {model_id!r} is not deleted", reason=Reason.MODEL_NOT_DELETED
                )
            deleted_at = model.delete_time
            now = self._clock()
            before, restored = model.etag, 0
            for version in self._all_versions(caller, model_id, show_deleted=True):
                if version.delete_time == deleted_at:
                    version.delete_time = version.purge_time = None
                    version.update_time = now
                    version.revision += 1
                    self._store.save_version(version)
                    restored += 1
            model.delete_time = model.purge_time = None
            model.update_time = now
            model.revision += 1
            self._store.save_model(model)
            self._store.append_event(
                change(
                    caller,
                    "UndeleteModel",
                    names.model_name(model.model_id),
                    now,
                    summary={"versions_restored": restored},
                    before=before,
                    after=model.etag,
                )
            )
        return model

    # -- versions ----------------------------------------------------------------------------
    def create_version(
        self,
        caller: Caller,
        model_id: str,
        values: dict[str, Any],
        request_id: str = "",
        fingerprint: str = "",
    ) -> ModelVersion:
        """Create the next version (DRAFT, DEVELOPMENT) of a live model; ``request_id`` and
        ``fingerprint`` as in :meth:`create_model`."""
        names.check_request_id(request_id)
        self._auth.require(caller, model_id, Action.CREATE)
        fields = self._version_values(caller, model_id, values)
        if request_id:
            earlier = self._replay(caller, request_id, "CreateModelVersion", fingerprint)
            if earlier is not None:
                return self.get_version(caller, names.parse_version_name(earlier))
        now = self._clock()
        try:
            with self._store.transaction():
                # One UPDATE locks the live model and takes the next number.
                number = self._store.allocate_version_number(caller.tenant, model_id)
                if number is None:
                    self._live_model(caller, model_id)
                    raise _model_not_found(model_id)  # deleted for good since
                version = ModelVersion(
                    tenant=caller.tenant,
                    model_id=model_id,
                    number=number,
                    uid=str(uuid.uuid4()),
                    create_time=now,
                    update_time=now,
                    **fields,
                )
                self._store.insert_version(version)
                if request_id:
                    self._store.record_request(
                        RequestRecord(
                            caller.tenant,
                            request_id,
                            "CreateModelVersion",
                            names.version_name(model_id, number),
                            now,
                            fingerprint,
                        )
                    )
                self._store.append_event(
                    change(
                        caller,
                        "CreateModelVersion",
                        names.version_name(version.model_id, version.number),
                        now,
                        after=version.etag,
                    )
                )
        except AlreadyExists as exc:
            earlier = (
                self._replay(caller, request_id, "CreateModelVersion", fingerprint)
                if request_id
                else None
            )
            if earlier is None:
                raise exc
            return self.get_version(caller, names.parse_version_name(earlier))
        return version

    def get_version(
        self, caller: Caller, ref: names.VersionRef, read_time: datetime | None = None
    ) -> ModelVersion:
        """A version by number (soft-deleted included), ``latest`` or alias; with
        ``read_time`` an alias resolves to the version it pointed at then."""
        self._auth.require(caller, ref.model_id, Action.READ)
        if read_time is not None and ref.alias is not None:
            if ref.is_latest:
                raise InvalidArgument.field("read_time", "applies to aliases, not to latest")
            at = self._alias_at(caller, ref.model_id, ref.alias, read_time)
            ref = names.VersionRef(ref.model_id, number=at.version_number)
        return self._resolve(caller, ref)

    def list_versions(
        self,
        caller: Caller,
        model_id: str | None,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter_text: str = "",
        order_by: str = "",
        show_deleted: bool = False,
    ) -> tuple[list[ModelVersion], str]:
        """One page of versions of a model (or of every model when ``model_id`` is None)."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        expr = parse_filter(filter_text, VERSION_SCHEMA)
        order = parse_order_by(order_by, VERSION_SCHEMA, VERSION_DEFAULT_ORDER)
        cursor = pager.cursor("versions", model_id, filter_text, order, show_deleted)
        if model_id is not None:
            self.get_model(caller, model_id)
        query = ListQuery(
            expr, order, show_deleted, pager.size, cursor, self._auth.visible_to(caller)
        )
        return pager.reply(self._store.list_versions(caller.tenant, model_id, query, self._clock()))

    def update_version(
        self, caller: Caller, ref: names.VersionRef, etag: str, patch: Patch
    ) -> ModelVersion:
        """Apply the masked fields; content fields only while DRAFT."""
        paths = VERSION_FIELDS.check_mask(patch.paths)
        tops = {p.split(".")[0] for p in paths}
        self._auth.require(caller, ref.model_id, Action.UPDATE)
        changes = self._version_values(caller, ref.model_id, patch.values, tops)
        with self._store.transaction():
            version = self._numbered(caller, ref, for_update=True)
            self._require_live(version)
            check_etag(etag, version.etag, "model_version.etag")
            before = version.etag
            if patch.paths == ("*",) and version.state is VersionState.READY:
                # `*` means every field updatable in the current state.
                paths = VERSION_FIELDS.paths(Mutability.ALWAYS)
                tops = set(paths)
            sealed = {
                t for t in tops if VERSION_FIELDS.spec(t).mutability is Mutability.WHILE_DRAFT
            }
            if version.state is VersionState.READY and sealed:
                raise FailedPrecondition(
                    f"{', '.join(sorted(sealed))} cannot change once the version is READY",
                    reason=Reason.VERSION_SEALED,
                )
            for path in paths:
                VERSION_FIELDS.apply(version, path, changes)
            # `labels.<key>` / `metrics.<key>` paths add entries: the limits hold for the result.
            check_labels(version.labels, "model_version.labels")
            check_metrics(version.metrics, "model_version.metrics")
            version.update_time = self._clock()
            version.revision += 1
            self._store.save_version(version)
            self._store.append_event(
                change(
                    caller,
                    "UpdateModelVersion",
                    names.version_name(version.model_id, version.number),
                    version.update_time,
                    summary={"update_mask": list(paths)},
                    before=before,
                    after=version.etag,
                )
            )
        return version

    def delete_version(
        self, caller: Caller, ref: names.VersionRef, etag: str, force: bool = False
    ) -> ModelVersion:
        """Soft-delete a version; aliases pointing at it are removed. Unless ``force``, a
        version that live versions were produced by is FAILED_PRECONDITION."""
        with self._store.transaction():
            self._auth.require(caller, ref.model_id, Action.DELETE)
            version = self._numbered(caller, ref, for_update=True)
            self._require_live(version)
            check_etag(etag, version.etag, "etag")
            if not force:
                refuse_if_depended_on(self._store, caller, version.model_id, version.number)
            now = self._clock()
            before, aliases = version.etag, sorted(version.aliases)
            self._soft_delete_version(caller, version, now, "DeleteModelVersion")
            self._store.append_event(
                change(
                    caller,
                    "DeleteModelVersion",
                    names.version_name(version.model_id, version.number),
                    now,
                    summary={"aliases_removed": aliases},
                    before=before,
                    after=version.etag,
                )
            )
        return version

    def undelete_version(self, caller: Caller, ref: names.VersionRef, etag: str) -> ModelVersion:
        """Restore a soft-deleted version of a live model."""
        with self._store.transaction():
            self._auth.require(caller, ref.model_id, Action.DELETE)
            self._live_model(caller, ref.model_id)
            version = self._numbered(caller, ref, for_update=True)
            check_etag(etag, version.etag, "etag")
            if version.delete_time is None:
                raise FailedPrecondition(
                    f"version {ref.number} is not deleted", reason=Reason.VERSION_NOT_DELETED
                )
            before = version.etag
            version.delete_time = version.purge_time = None
            version.update_time = self._clock()
            version.revision += 1
            self._store.save_version(version)
            self._store.append_event(
                change(
                    caller,
                    "UndeleteModelVersion",
                    names.version_name(version.model_id, version.number),
                    version.update_time,
                    before=before,
                    after=version.etag,
                )
            )
        return version

    def transition_stage(
        self,
        caller: Caller,
        ref: names.VersionRef,
        stage: Stage,
        comment: str,
        etag: str,
        *,
        archive_existing: bool = False,
    ) -> ModelVersion:
        """Move a version to ``stage`` (as :mod:`.stages` allows) and record who did it.

        With ``archive_existing`` (promotions only) every other live version of the model in
        that stage moves to ARCHIVED in the same transaction, each with its own record.
        """
        check_text(comment, "comment", 1000)
        if archive_existing and stage not in PROMOTIONS:
            raise InvalidArgument.field(
                "archive_existing", "applies only to promotions to STAGING or PRODUCTION"
            )
        with self._store.transaction():
            # The model's lock serialises stage moves, so one promotion's archiving sees the
            # other's result.
            self._auth.require(caller, ref.model_id, Action.UPDATE)
            if self._store.get_model(caller.tenant, ref.model_id, for_update=True) is None:
                raise _model_not_found(ref.model_id)
            version = self._resolve(caller, ref, for_update=True)
            self._require_live(version)
            check_etag(etag, version.etag, "etag")
            check_transition(version.stage, stage)
            # Archiving the PRODUCTION versions (archive_existing) touches PRODUCTION too.
            self._auth.require(caller, ref.model_id, Action.UPDATE, stages=(version.stage, stage))
            now = self._clock()
            before, archived = version.etag, []
            summary = {"from": version.stage.value, "to": stage.value, "comment": comment}
            if stage in PROMOTIONS:
                if version.state is not VersionState.READY:
                    raise FailedPrecondition(
                        f"only READY versions can move to {stage.value}; seal the version first",
                        reason=Reason.VERSION_NOT_READY,
                    )
                self._require_unexpired(version, now, f"move to {stage.value}")
            if archive_existing:
                for other in self._all_versions(caller, version.model_id, stage=stage):
                    if other.number == version.number:
                        continue
                    locked = self._store.get_version(
                        caller.tenant, other.model_id, other.number, for_update=True
                    )
                    if locked is not None and locked.stage is stage:
                        self._move_stage(caller, locked, Stage.ARCHIVED, comment, now)
                        archived.append(locked.number)
            self._move_stage(caller, version, stage, comment, now)
            self._store.append_event(
                change(
                    caller,
                    "TransitionModelVersionStage",
                    names.version_name(version.model_id, version.number),
                    now,
                    summary={**summary, "archived": archived},
                    before=before,
                    after=version.etag,
                )
            )
        return version

    def _move_stage(
        self, caller: Caller, version: ModelVersion, stage: Stage, comment: str, now: datetime
    ) -> None:
        check_transition(version.stage, stage)
        self._store.add_transition(
            caller.tenant,
            version.model_id,
            version.number,
            StageTransition(version.stage, stage, caller.actor, comment, now),
        )
        version.stage = stage
        version.update_time = now
        version.revision += 1
        self._store.save_version(version)

    def list_transitions(
        self, caller: Caller, ref: names.VersionRef, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[StageTransition], str]:
        """The stage history of a version, oldest first."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        version = self.get_version(caller, ref)
        after = single_cursor(pager.cursor("transitions", version.model_id, version.number), int)
        page = self._store.list_transitions(
            caller.tenant, version.model_id, version.number, after, pager.size
        )
        return pager.reply(page)

    # -- aliases -----------------------------------------------------------------------------
    def set_alias(
        self, caller: Caller, model_id: str, alias: str, target: names.VersionRef
    ) -> Alias:
        """Point ``alias`` at a READY, live, unexpired version (resolved once, now)."""
        if target.model_id != model_id:
            raise InvalidArgument.field(
                "alias.version", "must name a version of the alias's own model"
            )
        with self._store.transaction():
            self._auth.require(caller, model_id, Action.UPDATE, alias=alias)
            self._live_model(caller, model_id, for_update=True)
            version = self._resolve(caller, target)
            self._require_live(version)
            if version.state is not VersionState.READY:
                raise FailedPrecondition(
                    f"version {version.number} is not READY; seal it before aliasing it",
                    reason=Reason.VERSION_NOT_READY,
                )
            now = self._clock()
            self._require_unexpired(version, now, "be aliased")
            record = Alias(caller.tenant, model_id, alias, version.number, now)
            self._store.set_alias(record)
            self._moved(caller, model_id, alias, version.number, now, "SetAlias")
            self._store.append_event(
                change(
                    caller,
                    "SetAlias",
                    names.alias_name(model_id, alias),
                    now,
                    summary={"version": version.number},
                )
            )
        return record

    def get_alias(
        self, caller: Caller, model_id: str, alias: str, read_time: datetime | None = None
    ) -> Alias:
        """An alias; with ``read_time``, where it pointed then (from its history, which
        outlives the alias and its model)."""
        self._auth.require(caller, model_id, Action.READ)
        if read_time is not None:
            return self._alias_at(caller, model_id, alias, read_time)
        return self._get_alias(caller, model_id, alias)

    def _get_alias(self, caller: Caller, model_id: str, alias: str) -> Alias:
        found = self._store.get_alias(caller.tenant, model_id, alias)
        if found is None:
            self.get_model(caller, model_id)
            raise NotFound(
                f"alias {alias!r} of model {model_id!r} not found", reason=Reason.ALIAS_NOT_FOUND
            )
        return found

    def list_aliases(self, caller: Caller, model_id: str) -> list[Alias]:
        """All aliases of a model."""
        self.get_model(caller, model_id)
        return self._store.list_aliases(caller.tenant, model_id)

    def delete_alias(self, caller: Caller, model_id: str, alias: str) -> None:
        """Remove an alias."""
        with self._store.transaction():
            self._auth.require(caller, model_id, Action.UPDATE, alias=alias)
            if not self._store.delete_alias(caller.tenant, model_id, alias):
                self._get_alias(caller, model_id, alias)
                return
            now = self._clock()
            self._moved(caller, model_id, alias, None, now, "DeleteAlias")
            self._store.append_event(
                change(caller, "DeleteAlias", names.alias_name(model_id, alias), now)
            )

    # -- policies ----------------------------------------------------------------------------
    def get_model_policy(self, caller: Caller, model_id: str) -> StoredPolicy:
        """The model's policy (``policy`` None: it has none) with its etag; anyone who may
        read the model may read it."""
        self._auth.require(caller, model_id, Action.READ)
        stored = self._store.get_policy(caller.tenant, model_id)
        if stored is None:
            raise _model_not_found(model_id)
        return stored

    def set_model_policy(
        self, caller: Caller, model_id: str, policy: ModelPolicy, etag: str
    ) -> StoredPolicy:
        """Replace the model's policy; an empty one removes it (scopes alone decide again).

        The first policy of a model may be set by anyone whose scopes allow updating it (the
        model is tenant-wide until then); afterwards only its owners and tenant admins.
        ABORTED (ETAG_MISMATCH) if ``etag`` is set and stale, or another write won the race.
        """
        with self._store.transaction():
            stored = self._store.get_policy(caller.tenant, model_id)
            if stored is None:
                raise _model_not_found(model_id)
            decide(caller, model_id, stored.policy, Action.SET_POLICY)
            check_etag(etag, stored.etag, "policy.etag")
            new = None if policy.is_empty else policy
            written = self._store.set_policy(caller.tenant, model_id, new, stored.revision)
            if written is None:
                raise Aborted(
                    "policy.etag does not match: the policy changed since it was read",
                    reason=Reason.ETAG_MISMATCH,
                )
            summary = {"policy": None if new is None else json.loads(new.to_json())}
            self._store.append_event(
                change(
                    caller,
                    "SetModelPolicy",
                    names.model_name(model_id),
                    self._clock(),
                    summary=summary,
                    before=stored.etag,
                    after=written.etag,
                )
            )
        return written

    def list_alias_history(
        self,
        caller: Caller,
        model_id: str,
        alias: str | None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[AliasMove], str]:
        """Every move of one alias (or of all aliases of the model), oldest first, with who
        made it; kept after the alias and its model are gone."""
        self._auth.require(caller, model_id, Action.READ)
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        after = single_cursor(pager.cursor("alias-history", model_id, alias), int)
        page = self._store.list_alias_moves(caller.tenant, model_id, alias, after, pager.size)
        if not page.items and after is None:
            self.get_model(caller, model_id)  # no history and no model: NOT_FOUND
        return pager.reply(page)

    def _alias_at(self, caller: Caller, model_id: str, alias: str, at: datetime) -> Alias:
        move = self._store.alias_at(caller.tenant, model_id, alias, at)
        if move is None or move.version_number is None:
            raise NotFound(
                f"alias {alias!r} of model {model_id!r} did not exist at {at.isoformat()}",
                reason=Reason.ALIAS_NOT_FOUND,
            )
        return Alias(caller.tenant, model_id, alias, move.version_number, move.time)

    def _moved(
        self,
        caller: Caller,
        model_id: str,
        alias: str,
        number: int | None,
        now: datetime,
        method: str,
    ) -> None:
        move = AliasMove(caller.tenant, model_id, alias, number, now, caller.actor, method)
        self._store.record_alias_move(move)

    # -- maintenance -------------------------------------------------------------------------
    def purge(self) -> tuple[int, int]:
        """Remove for good what was soft-deleted longer ago than the retention period."""
        now = self._clock()
        with self._store.transaction():
            counts = self._store.purge(now)
            # Events outlive what they describe; the purge itself is on the record too.
            for tenant, resource in sorted(counts.purged):
                method = "PurgeModelVersion" if "/versions/" in resource else "PurgeModel"
                self._store.append_event(system_change(tenant, method, resource, now, {}))
        return counts.models, counts.versions

    # -- helpers used by the payload use cases -----------------------------------------------
    def resolve(self, caller: Caller, ref: names.VersionRef) -> ModelVersion:
        """A version by number, ``latest`` or alias (NOT_FOUND if none), for a caller that
        may read its model."""
        return self.get_version(caller, ref)

    def require_live(self, version: ModelVersion | VersionStatus) -> None:
        """FAILED_PRECONDITION if the version is soft-deleted."""
        self._require_live(version)

    # -- internals ---------------------------------------------------------------------------
    def _replay(self, caller: Caller, request_id: str, method: str, fingerprint: str) -> str | None:
        """The resource an earlier call with this request id created, if it was the same
        call; INVALID_ARGUMENT (REQUEST_ID_REUSED) if the id came with another request."""
        record = self._store.find_request(caller.tenant, request_id)
        if record is None:
            return None
        if record.method != method:
            raise InvalidArgument.field(
                "request_id",
                f"was already used for {record.method}",
                reason=Reason.REQUEST_ID_REUSED,
            )
        # Records from before fingerprints were kept ("") match any body.
        if fingerprint and record.fingerprint and record.fingerprint != fingerprint:
            raise InvalidArgument.field(
                "request_id",
                f"was already used for a different {method} request; use a new id",
                reason=Reason.REQUEST_ID_REUSED,
            )
        return record.resource_name

    def _live_model(self, caller: Caller, model_id: str, *, for_update: bool = False) -> Model:
        model = self._store.get_model(caller.tenant, model_id, for_update=for_update)
        if model is None:
            raise _model_not_found(model_id)
        if model.delete_time is not None:
            raise FailedPrecondition(
                f"model {model_id!r} is deleted; undelete it first", reason=Reason.MODEL_DELETED
            )
        return model

    def _numbered(
        self, caller: Caller, ref: names.VersionRef, *, for_update: bool = False
    ) -> ModelVersion:
        if ref.number is None:
            raise InvalidArgument.field("name", "must name the version by number here")
        version = self._store.get_version(
            caller.tenant, ref.model_id, ref.number, for_update=for_update
        )
        if version is None:
            self.get_model(caller, ref.model_id)
            raise NotFound(
                f"version {ref.number} of model {ref.model_id!r} not found",
                reason=Reason.VERSION_NOT_FOUND,
            )
        return version

    def _resolve(
        self, caller: Caller, ref: names.VersionRef, *, for_update: bool = False
    ) -> ModelVersion:
        if ref.number is not None:
            return self._numbered(caller, ref, for_update=for_update)
        if ref.is_latest:
            latest = self._store.latest_version(caller.tenant, ref.model_id, self._clock())
            if latest is None:
                self.get_model(caller, ref.model_id)
                raise NotFound(
                    f"model {ref.model_id!r} has no READY, live, unexpired version",
                    reason=Reason.VERSION_NOT_FOUND,
                )
            if not for_update:
                return latest  # read whole, as a numbered read would return it
            number = latest.number
        else:
            assert ref.alias is not None
            number = self._get_alias(caller, ref.model_id, ref.alias).version_number
        version = self._numbered(
            caller, names.VersionRef(ref.model_id, number=number), for_update=for_update
        )
        if ref.alias is not None and not ref.is_latest:
            # An alias keeps pointing at a version that expired, but no longer resolves.
            self._require_unexpired(version, self._clock(), f"resolve alias {ref.alias!r}")
        return version

    @staticmethod
    def _require_unexpired(version: ModelVersion, now: datetime, action: str) -> None:
        if version.is_expired(now):
            assert version.expire_time is not None
            name = names.version_name(version.model_id, version.number)
            raise FailedPrecondition(
                f"version {version.number} expired at {version.expire_time.isoformat()} and "
                f"cannot {action}; read it by number",
                reason=Reason.VERSION_EXPIRED,
                metadata={"version": name, "expire_time": version.expire_time.isoformat()},
            )

    @staticmethod
    def _require_live(version: ModelVersion | VersionStatus) -> None:
        if version.delete_time is not None:
            raise FailedPrecondition(
                f"version {version.number} is deleted; undelete it first",
                reason=Reason.VERSION_DELETED,
            )

    def _soft_delete_version(
        self, caller: Caller, version: ModelVersion, now: datetime, method: str
    ) -> None:
        for alias in list(version.aliases):
            self._store.delete_alias(caller.tenant, version.model_id, alias)
            self._moved(caller, version.model_id, alias, None, now, method)
        version.aliases = []
        version.delete_time = now
        version.purge_time = now + self._retention
        version.update_time = now
        version.revision += 1
        self._store.save_version(version)

    def _cascade_delete_versions(self, caller: Caller, model_id: str, now: datetime) -> None:
        for version in self._all_versions(caller, model_id, show_deleted=False):
            self._soft_delete_version(caller, version, now, "DeleteModel")

    def _all_versions(
        self,
        caller: Caller,
        model_id: str,
        *,
        show_deleted: bool = False,
        stage: Stage | None = None,
    ) -> list[ModelVersion]:
        """Every version of a model (or those in ``stage``), in number order."""
        expr = None if stage is None else parse_filter(f"stage = {stage.value}", VERSION_SCHEMA)

        def fetch(cursor: Cursor | None) -> Page[ModelVersion]:
            query = ListQuery(expr, VERSION_DEFAULT_ORDER, show_deleted, 1000, cursor)
            return self._store.list_versions(caller.tenant, model_id, query, self._clock())

        return read_all(fetch)

    def _version_values(
        self, caller: Caller, model_id: str, values: dict[str, Any], only: set[str] | None = None
    ) -> dict[str, Any]:
        """Validate version field values (all of them, or those in ``only``); ``produced_by``
        names are resolved to numbered version names."""
        out = VERSION_FIELDS.values(values, only)
        if "produced_by" in out:
            out["produced_by"] = self._check_produced_by(
                caller, model_id, out["produced_by"], "model_version.produced_by"
            )
        return out

    def _check_produced_by(
        self, caller: Caller, model_id: str, refs: list[str], field_name: str
    ) -> list[str]:
        check_count(list(refs), field_name, 100)
        resolved: list[str] = []
        for i, name in enumerate(refs):
            where = f"{field_name}[{i}]"
            ref = names.parse_version_name(name, where)
            try:
                version = self.get_version(caller, ref)
            except NotFound:
                raise InvalidArgument.field(where, f"{name!r} does not exist") from None
            resolved.append(names.version_name(version.model_id, version.number))
        return resolved


# -- pure helpers ------------------------------------------------------------------------------
def _model_not_found(model_id: str) -> NotFound:
    return NotFound(f"model {model_id!r} not found", reason=Reason.MODEL_NOT_FOUND)


def check_etag(given: str, current: str, field_name: str) -> None:
    """ABORTED (ETAG_MISMATCH, with the current etag) if ``given`` is set and stale."""
    if given and given != current:
        raise Aborted(
            f"{field_name} does not match: the resource changed since it was read",
            reason=Reason.ETAG_MISMATCH,
            metadata={"current_etag": current},
        )
