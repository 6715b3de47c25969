"""Pages of versions in the order of one metric (``order_by: "metrics.<k> [desc]"``), walked
along the metric indexes instead of sorting every match.

The general page query (:func:`.pages.fetch_page`) left-joins the metric for its sort key and
sorts all matches, because no index orders the versions that lack the metric after the ones
that have it. Here the order is the same, (value, id) with the versions lacking the metric
last and ties by id ascending in both directions, but a page is read from up to three ranges,
each delivered in order by an index so the database stops after the rows the page needs:

1. after a cursor ``(c, id)``: the rest of the cursor's tie, ``value = c AND owner > id``;
2. the versions beyond the cursor's value (every version with the metric on a first page),
   walked along ``version_metrics (tenant, model_pk, key, value [DESC], owner)`` for one model
   or ``version_metrics (tenant, key, value [DESC], owner)`` across models (migration 10), each
   joined to its version row and filtered there while walking;
3. the versions lacking the metric, in id order, after ``id`` if the cursor is among them;
   never read when the filter requires the metric (any top-level comparison on it does).

A range is one statement, read only while the page is short (``LIMIT`` what is still
missing). Filter comparisons on the ordering metric also bound range 2, so a walk stops where
the filter's matches end. Cursors are those of the general query (``(value or None, id)``), so
page tokens do not depend on which path served a page.
"""

from __future__ import annotations

from typing import Any

import peewee

from ...domain.errors import InvalidArgument
from ...domain.filtering import split_field
from ...domain.ports import ListQuery
from .sql_filters import Collection, check_cursor, compile_filter, implied_bounds, plan_order

METRICS = "metrics"


def metric_order_key(query: ListQuery, coll: Collection) -> str | None:
    """The metric key when the query is ordered by that metric alone, else None."""
    if len(query.order_by) != 1 or METRICS not in coll.maps:
        return None
    head, key = split_field(query.order_by[0].field)
    if head != METRICS or not key:
        return None
    return key


def fetch_metric_page(
    coll: Collection,
    models: Any,
    tenant: str,
    model_id: str | None,
    query: ListQuery,
    *,
    now_us: int,
    scope: list[Any],
) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
    """Rows of one page ordered by the query's only key ``metrics.<k>``, and the next cursor.

    ``models`` is the models row class (the model's row id leads the per-model index);
    ``scope`` holds the caller's conditions on the version row, as for ``fetch_page``.
    """
    if query.page_size <= 0:
        raise InvalidArgument.field("page_size", "must be positive")
    key = metric_order_key(query, coll)
    if key is None:
        raise AssertionError("fetch_metric_page needs an order by one metric")
    order = plan_order(query.order_by, coll, tenant)  # checks the key is orderable
    after = None if query.after is None else tuple(query.after)
    if after is not None:
        check_cursor(order.keys, after)
    descending = query.order_by[0].descending
    row, side = coll.row, coll.maps[METRICS]
    conditions = [row.tenant == tenant, *scope]
    if not query.show_deleted:
        conditions.append(row.delete_time.is_null())
    if query.filter is not None:
        conditions.append(compile_filter(query.filter, coll, tenant, now_us))

    walked = side.alias("w")
    bounds, present = implied_bounds(
        query.filter, query.order_by[0].field, coll.schema.maps[METRICS], walked.value
    )
    walk = [walked.tenant == tenant, walked.key == key]
    if model_id is not None:
        model_pk = models.select(models.id).where(
            models.tenant == tenant, models.model_id == model_id
        )
        walk.append(walked.model_pk == model_pk)
    value_order = walked.value.desc() if descending else walked.value.asc()

    def walk_range(*extra: Any) -> Any:
        return (
            walked.select(row, walked.value.alias("_k0"))
            .join(row, on=(row.id == walked.owner))
            .where(*walk, *extra, *conditions)
            .order_by(value_order, walked.owner.asc())
        )

    ranges: list[Any] = []
    lacking_after: int | None = None
    if after is None:
        ranges.append(walk_range(*bounds))
    elif after[0] is not None:
        value, pk = after
        beyond = walked.value < value if descending else walked.value > value
        # The filter's bounds stay out of the tie: SQLite would seek by them, not by value.
        ranges.append(walk_range(walked.value == value, walked.owner > pk))
        ranges.append(walk_range(beyond, *bounds))
    else:
        lacking_after = after[1]
    if not present:
        ranges.append(_lacking(row, side, tenant, key, conditions, lacking_after))

    # Rows straight from the driver cursor: peewee's per-value conversion of ``.dicts()``
    # costs more than the walk itself (every selected column is an int, text or float).
    names = [f.name for f in row._meta.sorted_fields] + ["_k0"]
    database = row._meta.database
    want = query.page_size + 1
    found: list[dict[str, Any]] = []
    for select in ranges:
        cursor = database.execute(select.limit(want - len(found)))
        try:
            found.extend(dict(zip(names, values, strict=True)) for values in cursor.fetchall())
        finally:
            cursor.close()
        if len(found) >= want:
            break
    if len(found) <= query.page_size:
        return found, None
    found = found[: query.page_size]
    return found, order.cursor(found[-1])


def _lacking(
    row: Any, side: Any, tenant: str, key: str, conditions: list[Any], after: int | None
) -> Any:
    """The versions without metric ``key`` (they sort last), in id order."""
    has = side.select(peewee.SQL("1")).where(
        side.owner == row.id, side.tenant == tenant, side.key == key
    )
    lacking = [peewee.NodeList((peewee.SQL("NOT"), peewee.fn.EXISTS(has)), parens=True)]
    if after is not None:
        lacking.append(row.id > after)
    return (
        row.select(row, peewee.Value(None).alias("_k0"))
        .where(*conditions, *lacking)
        .order_by(row.id.asc())
    )
