"""The lineage side tables: indexed copies of a version's ``produced_by``, datasets and
dependency names, written with the version row, and the queries that read them.

The JSON columns of ``versions`` stay the record that entities are read from; a side table is
rewritten in the same transaction as its version, and only when the JSON it copies changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...domain import names
from .schema import Tables

# JSON column of ``versions`` -> the side table that indexes it.
_SOURCES = {
    "produced_by": "version_upstreams",
    "datasets": "version_datasets",
    "dependencies_json": "version_dependencies",
}


def write_side_rows(
    t: Tables, tenant: str, owner: int, columns: Mapping[str, Any], before: Mapping[str, Any]
) -> None:
    """Bring the side tables of version row ``owner`` in line with its new ``columns``.

    ``before`` holds the JSON columns as stored until now (empty for a new row); a side table
    whose source column is unchanged is left alone.
    """
    for column, table_name in _SOURCES.items():
        if column in before and before[column] == columns[column]:
            continue
        table = getattr(t, table_name)
        if before:
            table.delete().where(table.owner == owner).execute()
        entries = _entries(column, json.loads(columns[column]), tenant, owner)
        if entries:
            table.insert_many(entries).as_rowcount().execute()


def _entries(column: str, items: list[Any], tenant: str, owner: int) -> list[dict[str, Any]]:
    base = {"tenant": tenant, "owner": owner}
    if column == "produced_by":
        return [{**base, "upstream": name} for name in dict.fromkeys(items)]
    if column == "datasets":
        return [
            {**base, "position": i, "uri": d["uri"], "digest": d["digest"]}
            for i, d in enumerate(items)
        ]
    return [{**base, "position": i, "name": d["name"]} for i, d in enumerate(items)]


def source_columns() -> tuple[str, ...]:
    """The JSON columns of ``versions`` the side tables copy."""
    return tuple(_SOURCES)


def delete_side_rows(t: Tables, owners: Sequence[int]) -> None:
    """Remove the side rows of versions about to be deleted for good."""
    for table in (t.version_upstreams, t.version_datasets, t.version_dependencies):
        table.delete().where(table.owner.in_(owners)).execute()


def consumers_query(t: Tables, tenant: str, upstreams: Sequence[str], live_only: bool) -> Any:
    """Version rows (plus ``_upstream``) whose ``produced_by`` names one of ``upstreams``."""
    u, v = t.version_upstreams, t.versions
    query = (
        u.select(v, u.upstream.alias("_upstream"))
        .join_from(u, v, on=(v.id == u.owner))
        .where(u.tenant == tenant, u.upstream.in_(list(upstreams)), v.tenant == tenant)
    )
    if live_only:
        query = query.where(v.delete_time.is_null())
    return query.order_by(u.upstream, v.id)


def dataset_users_query(t: Tables, tenant: str, uri: str, live_only: bool) -> Any:
    """Version rows with a dataset reference to ``uri``."""
    d, v = t.version_datasets, t.versions
    owners = d.select(d.owner).where(d.tenant == tenant, d.uri == uri)
    query = v.select(v).where(v.tenant == tenant, v.id.in_(owners))
    if live_only:
        query = query.where(v.delete_time.is_null())
    return query.order_by(v.id)


def dependents_query(t: Tables, tenant: str, model_id: str, number: int | None) -> Any:
    """``(model_id, number)`` of live versions outside the target (one version, or every
    version of a model when ``number`` is None) whose ``produced_by`` names the target."""
    u, v = t.version_upstreams, t.versions
    if number is None:
        prefix = names.version_name(model_id, 0)[:-1]  # "models/m/versions/"
        # A range instead of LIKE: every backend serves it from the index.
        names_target = (u.upstream >= prefix) & (u.upstream < prefix[:-1] + "0")
        outside = v.model_id != model_id
    else:
        names_target = u.upstream == names.version_name(model_id, number)
        outside = ~((v.model_id == model_id) & (v.number == number))
    return (
        u.select(v.model_id, v.number)
        .join_from(u, v, on=(v.id == u.owner))
        .where(u.tenant == tenant, names_target, v.tenant == tenant, v.delete_time.is_null())
        .where(outside)
        .distinct()
        .order_by(v.model_id, v.number)
    )
