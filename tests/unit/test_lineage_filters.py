"""The lineage fields of the version filter schema: parsing, presence tests and ordering."""

from __future__ import annotations

import pytest

from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.filtering import And, Comparison, Op
from modelregistry_server.domain.listing import (
    VERSION_DEFAULT_ORDER,
    VERSION_SCHEMA,
    parse_order_by,
)
from modelregistry_server.domain.ports import OrderKey

REPEATED = ("produced_by", "datasets.uri", "datasets.digest", "dependencies.name")


@pytest.mark.parametrize("field", REPEATED)
def test_repeated_fields_parse_with_any_element_operators(field: str) -> None:
    assert parse_filter(f'{field} = "x"', VERSION_SCHEMA) == Comparison(field, Op.EQ, "x")
    assert parse_filter(f'{field} : "x"', VERSION_SCHEMA) == Comparison(field, Op.HAS, "x")
    assert parse_filter(f"{field}:*", VERSION_SCHEMA) == Comparison(field, Op.HAS, None)
    assert parse_filter(f'{field} = "x*"', VERSION_SCHEMA) == Comparison(
        field, Op.EQ, "x", prefix=True
    )


def test_source_fields_are_plain_text() -> None:
    assert parse_filter(
        'source.repository = "https://git/r" source.commit:"3f"', VERSION_SCHEMA
    ) == (
        And(
            (
                Comparison("source.repository", Op.EQ, "https://git/r"),
                Comparison("source.commit", Op.HAS, "3f"),
            )
        )
    )
    with pytest.raises(InvalidArgument) as info:
        parse_filter("source.commit:*", VERSION_SCHEMA)
    assert info.value.reason is Reason.INVALID_FILTER
    assert "repeated fields" in info.value.message


@pytest.mark.parametrize("text", ["datasets.role = TRAINING", "source = x", "dependencies = x"])
def test_other_lineage_paths_are_unknown(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text, VERSION_SCHEMA)
    assert info.value.reason is Reason.INVALID_FILTER
    assert "unknown field" in info.value.message


def test_source_fields_order_and_repeated_fields_do_not() -> None:
    assert parse_order_by("source.commit desc, source.repository", VERSION_SCHEMA, ()) == (
        OrderKey("source.commit", descending=True),
        OrderKey("source.repository"),
    )
    for field in REPEATED:
        with pytest.raises(InvalidArgument) as info:
            parse_order_by(field, VERSION_SCHEMA, VERSION_DEFAULT_ORDER)
        assert info.value.reason is Reason.INVALID_ORDER_BY
