"""Rules for user-supplied field values (lengths, label and metric keys, finiteness)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from .errors import InvalidArgument

LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_.-]{0,62}")
METRIC_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
MAX_LABELS = 64
MAX_LABEL_VALUE = 256
MAX_METRICS = 256
MAX_SHORT_TEXT = 200
MAX_DESCRIPTION = 10_000
MAX_LIST_ITEMS = 1_000


def check_text(value: str, field: str, limit: int = MAX_SHORT_TEXT) -> str:
    """A string of at most ``limit`` characters without NUL."""
    if len(value) > limit:
        raise InvalidArgument.field(field, f"is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidArgument.field(field, "contains a NUL character")
    return value


def check_labels(labels: Mapping[str, str], field: str) -> dict[str, str]:
    """Label keys ``[a-z][a-z0-9_.-]{0,62}``, values ≤ 256 characters, at most 64 pairs."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgument.field(field, f"has more than {MAX_LABELS} labels")
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(key):
            raise InvalidArgument.field(
                f"{field}.{key}", "label key must match [a-z][a-z0-9_.-]{0,62}"
            )
        check_text(value, f"{field}.{key}", MAX_LABEL_VALUE)
    return dict(labels)


def check_label_key(key: str, field: str) -> str:
    """One label key (used by ``labels.<key>`` update-mask paths)."""
    if not LABEL_KEY_RE.fullmatch(key):
        raise InvalidArgument.field(field, f"label key {key!r} must match [a-z][a-z0-9_.-]{{0,62}}")
    return key


def check_metric_key(key: str, field: str) -> str:
    """One metric key."""
    if not METRIC_KEY_RE.fullmatch(key):
        raise InvalidArgument.field(
            field, f"metric key {key!r} must match [A-Za-z_][A-Za-z0-9_.-]{{0,62}}"
        )
    return key


def check_metrics(metrics: Mapping[str, float], field: str) -> dict[str, float]:
    """Metric keys as :data:`METRIC_KEY_RE`, finite values, at most 256 entries."""
    if len(metrics) > MAX_METRICS:
        raise InvalidArgument.field(field, f"has more than {MAX_METRICS} metrics")
    for key, value in metrics.items():
        check_metric_key(key, f"{field}.{key}")
        if not math.isfinite(value):
            raise InvalidArgument.field(f"{field}.{key}", "metric values must be finite")
    return {k: float(v) for k, v in metrics.items()}


def check_count(items: list[object], field: str, limit: int = MAX_LIST_ITEMS) -> None:
    """At most ``limit`` entries in a repeated field."""
    if len(items) > limit:
        raise InvalidArgument.field(field, f"has more than {limit} entries")
