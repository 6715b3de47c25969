"""Options and helpers several command groups share."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import click

__all__ = [
    "filter_option",
    "key_values",
    "limit_option",
    "limited",
    "metric_values",
    "order_by_option",
    "param_values",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def _pairs(values: Iterable[str], option: str) -> Iterator[tuple[str, str]]:
    for value in values:
        key, eq, rest = value.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{value!r}: write KEY=VALUE", param_hint=option)
        yield key, rest


def key_values(values: Iterable[str], option: str = "--label") -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (the last of a key wins)."""
    return dict(_pairs(values, option))


def metric_values(values: Iterable[str], option: str = "--metric") -> dict[str, float]:
    """``KEY=NUMBER`` options as metrics."""
    out: dict[str, float] = {}
    for key, text in _pairs(values, option):
        try:
            out[key] = float(text)
        except ValueError:
            raise click.BadParameter(f"{key}={text}: not a number", param_hint=option) from None
    return out


def param_values(values: Iterable[str], option: str = "--param") -> dict[str, Any]:
    """``KEY=VALUE`` parameters; a value that is JSON (``0.01``, ``[64,32]``, ``true``) is
    stored as that, anything else as text."""
    out: dict[str, Any] = {}
    for key, text in _pairs(values, option):
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def limit_option(f: _F) -> _F:
    """``--limit N``: at most N items (0, the default: all)."""
    return click.option(
        "--limit",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="At most this many items (0: all).",
    )(f)


def filter_option(f: _F) -> _F:
    return click.option(
        "--filter", "filter_", default="", metavar="EXPR", help="AIP-160 filter (see README)."
    )(f)


def order_by_option(f: _F) -> _F:
    return click.option(
        "--order-by", default="", metavar="FIELDS", help='Ordering, e.g. "metrics.auc desc".'
    )(f)


def limited(items: Iterable[_T], limit: int) -> list[_T]:
    """The first ``limit`` items (all if 0), fetching no page beyond them."""
    return list(itertools.islice(items, limit) if limit else items)
