"""Small statistics helpers (no numpy needed)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = math.ceil(pos)
    if low == high:
        return data[low]
    return data[low] + (data[high] - data[low]) * (pos - low)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, Any]:
    """Count, mean and the usual percentiles of latencies in milliseconds."""
    if not latencies_ms:
        return {"count": 0}
    return {
        "count": len(latencies_ms),
        "mean": statistics.fmean(latencies_ms),
        "p50": percentile(latencies_ms, 50),
        "p90": percentile(latencies_ms, 90),
        "p99": percentile(latencies_ms, 99),
        "p999": percentile(latencies_ms, 99.9),
        "max": max(latencies_ms),
    }


def cdf_points(latencies_ms: Sequence[float], points: int = 200) -> list[float]:
    """Latencies at ``points`` evenly spaced quantiles (enough to redraw a CDF)."""
    if not latencies_ms:
        return []
    return [percentile(latencies_ms, 100 * i / (points - 1)) for i in range(points)]


def median(values: Sequence[float]) -> float:
    """Median; NaN for no values."""
    return statistics.median(values) if values else math.nan


def downsample(points: Sequence[Sequence[float]], limit: int = 400) -> list[list[float]]:
    """At most ``limit`` evenly spread points of a time series."""
    if len(points) <= limit:
        return [list(p) for p in points]
    step = len(points) / limit
    return [list(points[int(i * step)]) for i in range(limit)]
