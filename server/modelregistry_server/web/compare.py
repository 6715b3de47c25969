"""``/models/{model}/compare?versions=3,5,7``: two or more versions side by side.

Parameters and metadata are one row each with the differences marked; metrics are a table
and a bar chart; one metric (``metric=``) is also charted across the model's versions, read
newest first in keyset pages and bounded to :data:`TREND_LIMIT` versions. The charts are drawn
by ``static/compare.js`` (Chart.js, vendored) from a ``<script type="application/json">``
block: the page itself carries no script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from ..domain import names
from ..domain.entities import ModelVersion
from ..domain.errors import InvalidArgument
from ..domain.identity import Caller
from ..domain.registry import Registry
from .pages import Page, View, registry_rpc

MAX_COMPARED = 10
TREND_LIMIT = 200  # versions charted for one metric, newest first
TREND_PAGE = 200  # versions per keyset page of that read (one query: each costs the same)
_FIELD = "versions"


@dataclass(frozen=True)
class Row:
    """One compared property: its name, one shown value per version, and whether they differ."""

    name: str
    values: tuple[str, ...]
    differs: bool


@dataclass(frozen=True)
class TrendPoint:
    number: int
    value: float


def parse_versions(model_id: str, raw: str) -> list[names.VersionRef]:
    """``3,5,latest,production`` → version references (2 to :data:`MAX_COMPARED`)."""
    segments = [s.strip() for s in raw.split(",") if s.strip()]
    if len(segments) < 2:
        raise InvalidArgument.field(
            _FIELD, "name two or more versions, e.g. ?versions=3,5 (numbers, aliases or latest)"
        )
    if len(segments) > MAX_COMPARED:
        raise InvalidArgument.field(_FIELD, f"compare at most {MAX_COMPARED} versions at once")
    return [
        names.parse_version_name(f"models/{model_id}/versions/{segment}", _FIELD)
        for segment in segments
    ]


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, sort_keys=True)


def _rows(keys: list[str], values_of: list[dict[str, Any]], prefix: str = "") -> list[Row]:
    rows = []
    for key in keys:
        raw = [v.get(key) for v in values_of]
        present = [key in v for v in values_of]
        differs = not all(present) or any(r != raw[0] for r in raw[1:])
        rows.append(Row(prefix + key, tuple(_shown(r) for r in raw), differs))
    return rows


def _metadata(version: ModelVersion) -> dict[str, Any]:
    source = version.source
    return {
        "description": version.description,
        "type": version.type,
        "author": version.author,
        "stage": version.stage.value,
        "state": version.state.value,
        "aliases": ", ".join(sorted(version.aliases)),
        "files": version.file_count,
        "total size (bytes)": version.total_size,
        "inputs": ", ".join(f"{v.name}: {v.type}" for v in version.inputs),
        "outputs": ", ".join(f"{v.name}: {v.type}" for v in version.outputs),
        "dependencies": ", ".join(f"{d.name} {d.version}".strip() for d in version.dependencies),
        "produced by": ", ".join(version.produced_by),
        "source": f"{source.repository}@{source.commit}" if source is not None else "",
        "datasets": ", ".join(d.uri for d in version.datasets),
        "created": version.create_time.strftime("%Y-%m-%d %H:%M UTC"),
        "deleted": "yes" if version.is_deleted else "no",
        **{f"label {k}": v for k, v in sorted(version.labels.items())},
    }


def _trend(registry: Registry, caller: Caller, model_id: str, metric: str) -> list[TrendPoint]:
    """``metric`` of the newest :data:`TREND_LIMIT` versions that have it, oldest first."""
    points: list[TrendPoint] = []
    token = ""
    while len(points) < TREND_LIMIT:
        page, token = registry.list_versions(
            caller,
            model_id,
            page_size=min(TREND_PAGE, TREND_LIMIT - len(points)),
            page_token=token,
            filter_text=f"metrics.{metric}:*",
            order_by="version_number desc",
        )
        points.extend(TrendPoint(v.number, v.metrics[metric]) for v in page if metric in v.metrics)
        if not token:
            break
    points.reverse()
    return points


@dataclass(frozen=True)
class Comparison:
    versions: list[ModelVersion]
    parameters: list[Row]
    metadata: list[Row]
    metrics: list[Row]
    metric_names: list[str]
    metric: str
    trend: list[TrendPoint]


def compare_versions(
    registry: Registry, caller: Caller, refs: list[names.VersionRef], metric: str
) -> Comparison:
    """Resolve ``refs`` (NOT_FOUND for an unknown one) and build the comparison."""
    model_id = refs[0].model_id
    registry.get_model(caller, model_id)
    versions: list[ModelVersion] = []
    for ref in refs:
        version = registry.get_version(caller, ref)
        if all(v.number != version.number for v in versions):
            versions.append(version)
    if len(versions) < 2:
        raise InvalidArgument.field(_FIELD, "these name one version: name two or more different")
    parameters = [v.parameters for v in versions]
    metadata = [_metadata(v) for v in versions]
    metric_values: list[dict[str, Any]] = [dict(v.metrics) for v in versions]
    metric_names = sorted({k for m in metric_values for k in m})
    if metric and metric not in metric_names:
        raise InvalidArgument.field("metric", f"{metric!r} is not a metric of these versions")
    chosen = metric or (metric_names[0] if metric_names else "")
    return Comparison(
        versions=versions,
        parameters=_rows(sorted({k for p in parameters for k in p}), parameters),
        metadata=_rows(list(dict.fromkeys(k for m in metadata for k in m)), metadata),
        metrics=_rows(metric_names, metric_values),
        metric_names=metric_names,
        metric=chosen,
        trend=_trend(registry, caller, model_id, chosen) if chosen else [],
    )


def chart_data(result: Comparison) -> dict[str, Any]:
    """What ``compare.js`` draws: one bar group per metric, one line for the trend."""
    return {
        "metrics": {
            "labels": result.metric_names,
            "datasets": [
                {
                    "label": f"v{v.number}",
                    "data": [v.metrics.get(name) for name in result.metric_names],
                }
                for v in result.versions
            ],
        },
        "trend": {
            "metric": result.metric,
            "labels": [f"v{p.number}" for p in result.trend],
            "data": [p.value for p in result.trend],
        },
    }


async def compare(view: View) -> Response:
    model_id = names.check_model_id(view.request.path_params["model"], "model")
    # ``versions=3,5`` or, from the versions table's check boxes, ``versions=3&versions=5``.
    refs = parse_versions(model_id, ",".join(view.request.query_params.getlist(_FIELD)))
    metric = view.query("metric").strip()
    result = await view.run(compare_versions, view.services.registry, view.caller, refs, metric)
    return view.render(
        "compare.html",
        {
            "model_id": model_id,
            "result": result,
            "versions_param": ",".join(str(v.number) for v in result.versions),
            "chart": chart_data(result),
            "trend_limit": TREND_LIMIT,
        },
    )


PAGES = (
    Page("/models/{model}/compare", compare, registry_rpc("GetModelVersion"), ("GET",), "compare"),
)
