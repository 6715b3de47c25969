"""The shared core of the peewee metadata adapter: scopes, conflict-free inserts, row lookups.

Scopes: :meth:`StoreCore.connection` holds one pooled connection per thread (nested scopes
reuse it); :meth:`StoreCore.transaction` is a write transaction (``BEGIN IMMEDIATE`` on
SQLite) that nested calls join. Every method of the adapter also works outside any scope: it
opens what it needs. Reads of several statements run in one read-only snapshot.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import peewee

from ...domain import deadlines
from ...domain.errors import DomainError, InvalidArgument, NotFound, Reason
from . import statements
from .database import Backend
from .errors import translated
from .model_reads import model_reads
from .pages import file_collection, model_collection, upload_collection, version_collection
from .schema import Tables, bind_tables
from .statements import PairWrites, Statement, pair_writes
from .version_reads import version_reads

T = TypeVar("T")
Conflict = Callable[[], DomainError]
CHUNK = 500  # ids per IN (...) list


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one ``IN (...)`` list."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def tuples(query: Any) -> list[tuple[Any, ...]]:
    """Rows of a select as tuples (peewee's typing knows only model instances)."""
    return list(query.tuples())


def dicts(query: Any) -> list[dict[str, Any]]:
    """Rows of a select as ``{field name: value}``."""
    return list(query.dicts())


def first(query: Any) -> dict[str, Any] | None:
    """The first row of a select as ``{field name: value}``, or None."""
    row: dict[str, Any] | None = query.dicts().first()
    return row


def check_limit(limit: int) -> None:
    """INVALID_ARGUMENT unless ``limit`` is positive."""
    if limit <= 0:
        raise InvalidArgument.field("page_size", "must be positive")


class StoreCore:
    """Connection, transactions and lookups shared by every part of the adapter."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._db = backend.database
        self._proxy = peewee.DatabaseProxy()
        self._proxy.initialize(self._db)
        self._t: Tables = bind_tables(self._proxy)
        self._models_listing = model_collection(self._t)
        self._versions_listing = version_collection(self._t)
        self._uploads_listing = upload_collection(self._t)
        self._files_listing = file_collection(self._t)
        self._version_reads = version_reads(self._t, backend.dialect, self._db.param)
        self._model_reads = model_reads(self._t, backend.dialect, self._db.param)
        # PREPAREd once on each connection (PostgreSQL), before its first one-statement read
        self._setup = (*self._version_reads.setup, *self._model_reads.setup)
        self._set_up: weakref.WeakSet[Any] = weakref.WeakSet()  # connections done with setup
        self._set_up_lock = threading.Lock()
        param = self._db.param
        self._pair_writes: dict[str, PairWrites] = {
            t._meta.table_name: pair_writes(t, extra, param)
            for t, extra in (
                (self._t.model_labels, ()),
                (self._t.version_labels, ()),
                (self._t.version_metrics, ("model_pk",)),
            )
        }
        self._held = threading.local()  # what this thread's write transaction has locked
        # built on first use (two threads may both build one: the same text, harmless)
        self._statements: dict[tuple[Any, ...], Statement] = {}

    @property
    def backend(self) -> Backend:
        """The database this store runs on."""
        return self._backend

    # -- scopes ------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; nested calls join the outer one. Rolls back on exception.
        A call whose deadline has passed does not begin one."""
        deadlines.check()
        with translated(), self._db.connection_context():
            if self._db.in_transaction():
                yield
            else:
                try:
                    with self._backend.write_transaction():
                        yield
                finally:
                    self._transaction_ended()

    @contextmanager
    def connection(self) -> Iterator[None]:
        """A connection scope for one request; nested scopes reuse the outer connection.
        A call whose deadline has passed does not take one."""
        deadlines.check()
        with translated(), self._db.connection_context():
            yield

    def _transaction_ended(self) -> None:
        """Hook: the outermost write transaction of this thread committed or rolled back
        (``self._db.in_transaction()`` is False again either way)."""
        self._held.rows = None

    def _hold(self, key: tuple[Any, ...], value: Any) -> None:
        """Remember ``value`` (what a locked read found) until this thread's write
        transaction ends; call only inside one, with the row locked (FOR UPDATE on
        PostgreSQL, the write lock on SQLite), so nobody else can change it meanwhile."""
        held: dict[tuple[Any, ...], Any] | None = getattr(self._held, "rows", None)
        if held is None:
            held = self._held.rows = {}
        held[key] = value

    def _held_row(self, key: tuple[Any, ...], *, take: bool = False) -> Any:
        """What :meth:`_hold` remembered for ``key`` in this transaction, or None; ``take``
        forgets it (the caller is about to change the row)."""
        held: dict[tuple[Any, ...], Any] | None = getattr(self._held, "rows", None)
        if not held or not self._db.in_transaction():
            return None
        return held.pop(key, None) if take else held.get(key)

    def close(self) -> None:
        """Close every connection (pool included)."""
        with translated():
            self._backend.close()

    def connections_in_use(self) -> tuple[int, int]:
        """Pooled connections checked out now, and the pool's size."""
        pool: Any = self._db
        return len(pool._in_use), int(pool._max_connections)

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[None]:
        """A connection, and a read-only snapshot if several statements must agree."""
        with translated(), self._db.connection_context():
            if snapshot and not self._db.in_transaction():
                with self._backend.read_transaction():
                    yield
            else:
                yield

    def _fetch(
        self, sql: str, params: Sequence[Any], setup: Sequence[str] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a statement whose text is built once (see :mod:`.version_reads`; pass
        ``self._setup`` as ``setup`` for those reads) and return
        its rows; through ``execute_sql`` like every statement peewee sends. ``setup`` runs
        first, once per connection (PREPARE: a connection outlives a request)."""
        db: Any = self._db  # peewee's execute_sql is untyped
        if setup:
            connection = db.connection()
            with self._set_up_lock:
                done = connection in self._set_up
            if not done:
                for statement in setup:
                    db.execute_sql(statement)
                with self._set_up_lock:
                    self._set_up.add(connection)
        cursor = db.execute_sql(sql, params)
        try:
            found: list[tuple[Any, ...]] = cursor.fetchall()
        finally:
            cursor.close()
        return found

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        """Run a statement whose text is built once and that returns no rows."""
        db: Any = self._db
        db.execute_sql(sql, params).close()

    def _update_row(self, table: Any, pk: Any, columns: Mapping[str, Any]) -> None:
        """``UPDATE table SET columns WHERE id = pk``, its text built once per column set."""
        key = ("update", table._meta.table_name, *columns)
        statement = self._statements.get(key)
        if statement is None:
            statement = statements.update(table, list(columns), ["id"], self._db.param)
            self._statements[key] = statement
        self._run(statement.sql, statement.params([*columns.values(), pk]))

    def _insert_row(
        self,
        table: Any,
        columns: Mapping[str, Any],
        returning: str = "",
        conflict: Sequence[str] = (),
    ) -> Any:
        """``INSERT INTO table (columns)``, its text built once per column set; with
        ``returning`` (a field name), the new row's value of it; with ``conflict`` (field
        names of a unique key), a row already holding the key makes it insert nothing and
        return None."""
        key = ("insert", table._meta.table_name, returning, tuple(conflict), *columns)
        statement = self._statements.get(key)
        if statement is None:
            suffix = ""
            if conflict:
                target = ", ".join(statements.column(table, n) for n in conflict)
                suffix += f" ON CONFLICT ({target}) DO NOTHING"
            if returning:
                suffix += f" RETURNING {statements.column(table, returning)}"
            statement = statements.insert(table, list(columns), self._db.param, suffix)
            self._statements[key] = statement
        params = statement.params(list(columns.values()))
        if not returning:
            self._run(statement.sql, params)
            return None
        found = self._fetch(statement.sql, params)
        return found[0][0] if found else None

    def _write(self) -> AbstractContextManager[None]:
        return self.transaction()

    def _insert_new(self, table: Any, query: Any, target: list[Any], conflict: Conflict) -> Any:
        """Run an INSERT and return the new row's primary key; a row already holding the
        ``target`` key raises ``conflict()`` and changes nothing (one statement, no savepoint:
        ``ON CONFLICT (target) DO NOTHING RETURNING``)."""
        query = query.on_conflict(action="NOTHING", conflict_target=target)
        found = tuples(query.returning(table._meta.primary_key))
        if not found:
            raise conflict()
        return found[0][0]

    # -- lookups -----------------------------------------------------------------------------

    def _model_pk(self, tenant: str, model_id: str) -> int | None:
        held: int | None = self._held_row(("model_pk", tenant, model_id))
        if held is not None:  # locked by this transaction: the row is still there
            return held
        m = self._t.models
        pk: int | None = m.select(m.id).where(m.tenant == tenant, m.model_id == model_id).scalar()
        return pk

    def _require_model_pk(self, tenant: str, model_id: str) -> int:
        pk = self._model_pk(tenant, model_id)
        if pk is None:
            raise NotFound(f"model {model_id!r} does not exist", reason=Reason.MODEL_NOT_FOUND)
        return pk

    def _version_pk(self, tenant: str, model_id: str, number: int) -> int | None:
        v = self._t.versions
        pk: int | None = (
            v.select(v.id)
            .where(v.tenant == tenant, v.model_id == model_id, v.number == number)
            .scalar()
        )
        return pk

    def _require_version_pk(self, tenant: str, model_id: str, number: int) -> int:
        pk = self._version_pk(tenant, model_id, number)
        if pk is None:
            raise NotFound(
                f"version {number} of model {model_id!r} does not exist",
                reason=Reason.VERSION_NOT_FOUND,
            )
        return pk

    def _pairs(self, table: Any, tenant: str, owners: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Labels or metrics of several owners: ``{owner: {key: value}}``.

        Found by owner alone, through the primary key (owner ids are tenant-scoped already):
        with ``tenant = ?`` in the query, SQLite without planner statistics walks the tenant's
        whole ``(tenant, key, value, owner)`` index instead of looking up a page's owners.
        A row of another tenant is still never attached (checked here; there is none).
        """
        result: dict[int, dict[str, Any]] = {owner: {} for owner in owners}
        for chunk in chunks(list(result)):
            query = table.select(table.owner, table.key, table.value, table.tenant).where(
                table.owner.in_(chunk)
            )
            for owner, key, value, owner_tenant in tuples(query):
                if owner_tenant == tenant:
                    result[owner][key] = value
        return result

    def _replace_pairs(
        self,
        table: Any,
        tenant: str,
        owner: int,
        pairs: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Labels or metrics of an owner whose stored ones are not known here."""
        table.delete().where(table.owner == owner).execute()
        self._insert_pairs(table, tenant, owner, pairs, extra)

    def _insert_pairs(
        self,
        table: Any,
        tenant: str,
        owner: int,
        pairs: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Labels or metrics of a new owner (one statement, none if empty); ``extra`` holds
        columns every row repeats (a metric's ``model_pk``)."""
        if pairs:
            self._put_pairs(table, tenant, owner, list(pairs.items()), extra, replace=False)

    def _sync_pairs(
        self,
        table: Any,
        tenant: str,
        owner: int,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Bring an owner's labels or metrics from ``before`` (as stored) to ``after``:
        removed keys are deleted and new or changed ones upserted, so unchanged rows are
        not rewritten (no statement at all if nothing changed)."""
        gone = [key for key in before if key not in after]
        if gone:
            writes = self._pair_writes[table._meta.table_name]
            for chunk in chunks(gone):
                self._run(writes.delete_sql(len(chunk)), [owner, *chunk])
        changed = [
            (key, value)
            for key, value in after.items()
            if key not in before or not _same(before[key], value)
        ]
        if changed:
            self._put_pairs(table, tenant, owner, changed, extra, replace=True)

    def _put_pairs(
        self,
        table: Any,
        tenant: str,
        owner: int,
        pairs: Sequence[tuple[str, Any]],
        extra: Mapping[str, Any] | None,
        *,
        replace: bool,
    ) -> None:
        writes = self._pair_writes[table._meta.table_name]
        common = (tenant, owner, *(extra or {}).values())
        for chunk in chunks(pairs):
            self._run(writes.insert_sql(len(chunk), replace=replace), writes.rows(common, chunk))


def _same(stored: Any, value: Any) -> bool:
    """True if writing ``value`` over ``stored`` would store the same thing (``0.0`` and
    ``-0.0`` compare equal but are different values; NaN is never equal and is rewritten)."""
    if type(stored) is not type(value) or stored != value:
        return False
    return not isinstance(value, float) or str(stored) == str(value)
