"""Tests for the AIP-160 filter parser (domain/filter_parser.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.filter_parser import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    parse_filter,
)
from modelregistry_server.domain.filtering import (
    And,
    Comparison,
    Expr,
    FieldKind,
    Not,
    Op,
    Or,
    Value,
)
from modelregistry_server.domain.listing import MODEL_SCHEMA, VERSION_SCHEMA

Draw = Callable[[st.SearchStrategy[Any]], Any]

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(text: str) -> Expr | None:
    return parse_filter(text, VERSION_SCHEMA)


def cmp(field: str, op: str, value: Value, prefix: bool = False) -> Comparison:
    return Comparison(field, Op(op), value, prefix)


def error(text: str, schema: Any = VERSION_SCHEMA) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text, schema)
    err = info.value
    assert err.reason is Reason.INVALID_FILTER
    assert err.field_violations[0].field == "filter"
    assert err.message.startswith("filter: position ")
    return err


def position(err: InvalidArgument) -> int:
    match = re.match(r"filter: position (\d+): ", err.message)
    assert match, err.message
    return int(match.group(1))


A = cmp("model_id", "=", "a")
B = cmp("type", "=", "b")
C = cmp("author", "=", "c")
D = cmp("description", "=", "d")


# -- empty input -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_blank_filter_is_none(text: str) -> None:
    assert parse(text) is None


# -- values by kind ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model_id = "abc"', cmp("model_id", "=", "abc")),
        ("model_id = 'abc'", cmp("model_id", "=", "abc")),
        ("model_id = abc-1", cmp("model_id", "=", "abc-1")),
        ("model_id=abc", cmp("model_id", "=", "abc")),
        ("model_id = 42", cmp("model_id", "=", "42")),
        ("model_id = -x", cmp("model_id", "=", "-x")),
        ('description = ""', cmp("description", "=", "")),
        ('description = "two words (and AND)"', cmp("description", "=", "two words (and AND)")),
        ('description = "AND"', cmp("description", "=", "AND")),
        ("description = café", cmp("description", "=", "café")),
        ("labels.team = fraud", cmp("labels.team", "=", "fraud")),
        ("labels.a.b-c_D = x", cmp("labels.a.b-c_D", "=", "x")),
        ("metrics.accuracy >= 0.9", cmp("metrics.accuracy", ">=", 0.9)),
        ("metrics.loss < -1.5e3", cmp("metrics.loss", "<", -1500.0)),
        ("metrics.loss < +2E-2", cmp("metrics.loss", "<", 0.02)),
        ("metrics.loss = 42", cmp("metrics.loss", "=", 42.0)),
        ("metrics.loss = .5", cmp("metrics.loss", "=", 0.5)),
        ("metrics.loss = 5.", cmp("metrics.loss", "=", 5.0)),
        ('metrics.loss = "7"', cmp("metrics.loss", "=", 7.0)),
        ("version_number = 42", cmp("version_number", "=", 42)),
        ("version_number > -3", cmp("version_number", ">", -3)),
        ("version_number = 007", cmp("version_number", "=", 7)),
        (f"total_size <= {2**63 - 1}", cmp("total_size", "<=", 2**63 - 1)),
        (f"total_size >= -{2**63}", cmp("total_size", ">=", -(2**63))),
        ("stage = PRODUCTION", cmp("stage", "=", "PRODUCTION")),
        ('stage != "ARCHIVED"', cmp("stage", "!=", "ARCHIVED")),
        ("state = READY", cmp("state", "=", "READY")),
        ("expired = true", cmp("expired", "=", True)),
        ("expired != false", cmp("expired", "!=", False)),
        ("expired = 'true'", cmp("expired", "=", True)),
    ],
)
def test_values_are_converted_by_field_kind(text: str, expected: Comparison) -> None:
    result = parse(text)
    assert result == expected
    assert isinstance(result, Comparison)
    assert type(result.value) is type(expected.value)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05-05:30", datetime(2026, 1, 2, 8, 34, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456789Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-01T00:30:00+01:00", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc_datetimes(literal: str, expected: datetime) -> None:
    for quote in "\"'":
        result = parse(f"create_time > {quote}{literal}{quote}")
        assert isinstance(result, Comparison)
        assert result.value == expected
        assert isinstance(result.value, datetime)
        assert result.value.utcoffset() == timedelta(0)
        assert result.value.tzinfo is UTC


# -- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator(op: str) -> None:
    assert parse(f"version_number {op} 3") == cmp("version_number", op, 3)
    assert parse(f"metrics.f1{op}0.5") == cmp("metrics.f1", op, 0.5)
    assert parse(f'update_time {op} "2026-01-02T00:00:00Z"') == cmp(
        "update_time", op, datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert parse(f"author {op} m") == cmp("author", op, "m")  # strings: lexicographic


@pytest.mark.parametrize("op", ["=", "!="])
def test_enum_and_bool_accept_equality(op: str) -> None:
    assert parse(f"stage {op} STAGING") == cmp("stage", op, "STAGING")
    assert parse(f"expired {op} true") == cmp("expired", op, True)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize("clause", ["stage {} STAGING", "state {} READY", "expired {} true"])
def test_ordering_operators_rejected_on_enum_and_bool(op: str, clause: str) -> None:
    err = error(clause.format(op))
    assert position(err) == clause.index("{") + 1
    assert f"operator '{op}' is not supported" in err.message


def test_has_on_string_means_contains() -> None:
    assert parse("description:fraud") == cmp("description", ":", "fraud")
    assert parse('description : "two words"') == cmp("description", ":", "two words")
    assert parse("labels.team:ops") == cmp("labels.team", ":", "ops")
    assert parse(r'description:"a\*b"') == cmp("description", ":", "a*b")


def test_has_star_on_map_key_means_present() -> None:
    assert parse("labels.team:*") == Comparison("labels.team", Op.HAS, None)
    assert parse('labels.team : "*"') == Comparison("labels.team", Op.HAS, None)
    assert parse("metrics.auc:*") == Comparison("metrics.auc", Op.HAS, None)
    assert parse(r'labels.team:"\*"') == cmp("labels.team", ":", "*")  # escaped: contains '*'


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("description:*", 12, "presence"),
        ("stage:*", 6, "presence"),
        ("version_number:3", 15, "operator ':' is not supported on 'version_number'"),
        ("metrics.x:1", 10, "operator ':' is not supported on 'metrics.x'"),
        ("stage:PRODUCTION", 6, "operator ':' is not supported"),
        ("expired:true", 8, "operator ':' is not supported"),
        ('create_time:"2026-01-02T00:00:00Z"', 12, "operator ':' is not supported"),
        ("description:ab*", 15, "'*' is not allowed in a ':' value"),
        ('description:"*ab"', 14, "'*' is not allowed in a ':' value"),
    ],
)
def test_has_errors(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos
    assert message in err.message


# -- prefix matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_id = fraud*", cmp("model_id", "=", "fraud", prefix=True)),
        ('model_id = "fraud det*"', cmp("model_id", "=", "fraud det", prefix=True)),
        ("model_id != 'x-*'", cmp("model_id", "!=", "x-", prefix=True)),
        ("labels.team = fr*", cmp("labels.team", "=", "fr", prefix=True)),
        ("model_id = *", cmp("model_id", "=", "", prefix=True)),
        (r'model_id = "a\\*"', cmp("model_id", "=", "a\\", prefix=True)),
        (r'model_id = "a\**"', cmp("model_id", "=", "a*", prefix=True)),
        (r'model_id = "a\*"', cmp("model_id", "=", "a*")),
    ],
)
def test_trailing_star_is_a_prefix_match(text: str, expected: Comparison) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("model_id = a*b", 13, "only allowed at the end"),
        ("model_id = *a", 12, "only allowed at the end"),
        ('model_id = "a**"', 14, "only allowed at the end"),
        ("model_id < a*", 13, "only works with '=' or '!='"),
        ("model_id >= a*", 14, "only works with '=' or '!='"),
        ("stage = PROD*", 13, "only works on text fields"),
        ("version_number = 1*", 19, "only works on text fields"),
        ("metrics.x = 1*", 14, "only works on text fields"),
        ('create_time = "2026*"', 20, "only works on text fields"),
        ("expired = t*", 12, "only works on text fields"),
    ],
)
def test_misplaced_star_is_rejected(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos
    assert message in err.message


# -- escapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'description = "say \"hi\""', 'say "hi"'),
        (r'description = "back\\slash"', "back\\slash"),
        (r"description = 'it\'s'", "it's"),
        (r"""description = 'say "hi"'""", 'say "hi"'),
        (r"""description = "it's" """, "it's"),
        (r'description = "\'"', "'"),
        (r'description = "\*"', "*"),
        (r"description = a\b", "a\\b"),  # no escapes in bare words
    ],
)
def test_escapes(text: str, value: str) -> None:
    assert parse(text) == cmp("description", "=", value)


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        (r'description = "a\n"', 17, "unknown escape '\\n'"),
        ('description = "a\\', 17, "backslash at the end"),
        ('description = "abc', 15, 'unterminated string: no closing "'),
        ("description = 'abc", 15, "unterminated string: no closing '"),
        ("description = 'abc\"", 15, "unterminated string"),
    ],
)
def test_bad_strings(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos
    assert message in err.message


# -- structure: precedence, negation, parentheses ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_id = a AND type = b", And((A, B))),
        ("model_id = a type = b", And((A, B))),
        ("model_id = a\ntype = b\tauthor = c", And((A, B, C))),
        ("model_id = a OR type = b", Or((A, B))),
        ("model_id = a AND type = b AND author = c", And((A, B, C))),
        ("model_id = a OR type = b OR author = c", Or((A, B, C))),
        # AIP-160: OR binds tighter than AND (and than juxtaposition).
        ("model_id = a AND type = b OR author = c", And((A, Or((B, C))))),
        ("model_id = a OR type = b AND author = c", And((Or((A, B)), C))),
        ("model_id = a type = b OR author = c", And((A, Or((B, C))))),
        (
            "model_id = a OR type = b author = c OR description = d",
            And((Or((A, B)), Or((C, D)))),
        ),
        ("(model_id = a AND type = b) OR author = c", Or((And((A, B)), C))),
        ("(model_id = a)", A),
        ("((((model_id = a))))", A),
        ("(model_id = a) (type = b)", And((A, B))),
        ("(model_id = a AND type = b) AND author = c", And((A, B, C))),
        ("model_id = a AND (type = b AND author = c)", And((A, B, C))),
        ("(model_id = a OR type = b) OR author = c", Or((A, B, C))),
        ("model_id = a AND (type = b)", And((A, B))),
        ("NOT model_id = a", Not(A)),
        ("-model_id = a", Not(A)),
        ("- model_id = a", Not(A)),
        ("NOT(model_id = a)", Not(A)),
        ("-(model_id = a OR type = b)", Not(Or((A, B)))),
        ("NOT model_id = a OR type = b", Or((Not(A), B))),
        ("NOT model_id = a AND type = b", And((Not(A), B))),
        ("NOT NOT model_id = a", Not(Not(A))),
        ("--model_id = a", Not(Not(A))),
        ("NOT -model_id = a", Not(Not(A))),
        ("model_id = a -type = b", And((A, Not(B)))),
        ("model_id = a NOT type = b", And((A, Not(B)))),
        ("model_id = a OR NOT type = b", Or((A, Not(B)))),
        ("model_id=a OR(type=b)", Or((A, B))),
    ],
)
def test_structure(text: str, expected: Expr) -> None:
    assert parse(text) == expected


def test_keywords_are_uppercase_only() -> None:
    err = error("model_id = a and type = b")
    assert position(err) == 14
    assert "unknown field 'and'" in err.message
    assert "must be uppercase" in err.message
    assert parse("model_id = ANDROID") == cmp("model_id", "=", "ANDROID")


def test_keyword_prefixed_words_are_plain_words() -> None:
    assert parse("model_id = NOTE") == cmp("model_id", "=", "NOTE")
    assert parse("model_id = ORACLE") == cmp("model_id", "=", "ORACLE")


# -- field names -------------------------------------------------------------------------------


def test_unknown_field_names_the_field_and_the_allowed_ones() -> None:
    err = error("colour = red")
    assert position(err) == 1
    assert "unknown field 'colour'" in err.message
    for name in ("model_id", "version_number", "stage", "expired", "labels.<key>", "metrics.<key>"):
        assert name in err.message


def test_fields_are_checked_against_the_given_schema() -> None:
    assert parse_filter("display_name = x", MODEL_SCHEMA) == cmp("display_name", "=", "x")
    assert parse_filter("latest_version_number > 2", MODEL_SCHEMA) == cmp(
        "latest_version_number", ">", 2
    )
    err = error("type = a stage = PRODUCTION", MODEL_SCHEMA)
    assert position(err) == 10
    assert "unknown field 'stage'" in err.message
    assert "display_name" in err.message
    err = error("metrics.accuracy > 0.5", MODEL_SCHEMA)
    assert "unknown field 'metrics.accuracy'" in err.message


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("labels = x", 1, "unknown field 'labels'"),
        ("labels. = x", 8, "expected a key after 'labels.'"),
        ("labels.1x = a", 8, "invalid key '1x' for 'labels'"),
        ("metrics.-x = 1", 9, "invalid key '-x' for 'metrics'"),
        ("labels.a*b = x", 8, "invalid key 'a*b'"),
        (f"labels.{'k' * 64} = x", 8, "invalid key"),
        ("stage.x = a", 1, "unknown field 'stage.x'"),
        ("Stage = PRODUCTION", 1, "unknown field 'Stage'"),
    ],
)
def test_bad_field_names(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos
    assert message in err.message


def test_map_key_length_limit() -> None:
    assert parse(f"labels.{'k' * 63} = x") == cmp(f"labels.{'k' * 63}", "=", "x")


# -- value errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("version_number = 1.5", 18, "expected an integer for 'version_number'"),
        ("version_number = 1e3", 18, "expected an integer"),
        ("version_number = abc", 18, "expected an integer"),
        ("version_number = ١٢", 18, "expected an integer"),
        (f"file_count = {2**63}", 14, "out of the 64-bit range"),
        (f"file_count = -{2**63 + 1}", 14, "out of the 64-bit range"),
        ("metrics.x = nan", 13, "expected a finite number for 'metrics.x'"),
        ("metrics.x = inf", 13, "expected a finite number"),
        ("metrics.x = -Infinity", 13, "expected a finite number"),
        ("metrics.x = 1e999", 13, "expected a finite number"),
        ("metrics.x = 1_000", 13, "expected a finite number"),
        ("metrics.x = 0x10", 13, "expected a finite number"),
        ("metrics.x = 1.2.3", 13, "expected a finite number"),
        ('metrics.x = ""', 13, "expected a finite number"),
        ("stage = production", 9, "invalid value 'production' for 'stage'"),
        ("stage = BOGUS", 9, "expected one of DEVELOPMENT, STAGING, PRODUCTION, ARCHIVED"),
        ("state = ready", 9, "expected one of DRAFT, READY"),
        ("expired = True", 11, "expected true or false for 'expired'"),
        ("expired = 1", 11, "expected true or false"),
        ("create_time > 2026-01-02", 15, "expected a quoted RFC 3339 timestamp"),
        ("create_time > 2026-01-02T03:04:05Z", 15, "expected a quoted RFC 3339 timestamp"),
        ('create_time > "2026-01-02T03:04:05"', 15, "a time zone, Z or +HH:MM, is required"),
        ('create_time > "2026-01-02"', 15, "a time zone, Z or +HH:MM, is required"),
        ('create_time > "yesterday"', 15, "expected a quoted RFC 3339 timestamp"),
        ('create_time > "2026-13-02T03:04:05Z"', 15, "is not a valid timestamp"),
        ('create_time > "2026-02-30T03:04:05Z"', 15, "is not a valid timestamp"),
        ('create_time > "2026-01-02T24:00:00Z"', 15, "is not a valid timestamp"),
        ('create_time > "2026-01-02T23:59:60Z"', 15, "is not a valid timestamp"),
        ('create_time > "2026-01-02T03:04:05+24:00"', 15, "is not a valid timestamp"),
        ('create_time > "2026-01-02T03:04:05+01:60"', 15, "is not a valid timestamp"),
        ('create_time > "0001-01-01T00:00:00+01:00"', 15, "is not a valid timestamp"),
        ('create_time > "9999-12-31T23:59:59-01:00"', 15, "is not a valid timestamp"),
        ('create_time > "2026-01-02T03:04:05.Z"', 15, "expected a quoted RFC 3339 timestamp"),
        ('create_time > "2026-01-02 03:04:05Z"', 15, "expected a quoted RFC 3339 timestamp"),
    ],
)
def test_value_errors(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos, err.message
    assert message in err.message


# -- syntax errors and their positions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ("version_number >=", 18, "expected a value after '>=', found the end of the filter"),
        ("version_number >= ", 19, "expected a value after '>='"),
        ("model_id = )", 12, "expected a value after '=', found ')'"),
        ("model_id = (a)", 12, "expected a value after '=', found '('"),
        ("model_id = = a", 12, "expected a value after '=', found '='"),
        ("model_id = AND", 12, "found 'AND' (quote it to use it as a value)"),
        ("model_id = NOT", 12, "found 'NOT' (quote it"),
        ("model_id = - x", 12, "expected a value after '=', found '-'"),
        ("model_id = -", 12, "expected a value after '=', found '-'"),
        ('model_id = -"x"', 12, "expected a value after '=', found '-'"),
        ("model_id", 9, "expected an operator (= != < <= > >= :) after 'model_id'"),
        ("model_id abc", 10, "expected an operator"),
        ("model_id == a", 11, "expected a value after '=', found '='"),
        ("model_id ! a", 10, "unexpected '!'"),
        ("model_id = a !", 14, "unexpected '!'"),
        ("model_id = a AND", 17, "expected a field name, NOT or '(' after 'AND'"),
        ("model_id = a OR", 16, "expected a field name, NOT or '(' after 'OR'"),
        ("model_id = a AND OR type = b", 18, "after 'AND', found 'OR'"),
        ("AND model_id = a", 1, "expected a field name, NOT or '(', found 'AND'"),
        ("OR model_id = a", 1, "found 'OR'"),
        ("NOT", 4, "after 'NOT', found the end of the filter"),
        ("-", 2, "after '-', found the end of the filter"),
        ("= a", 1, "expected a field name, NOT or '(', found '='"),
        ('"model_id" = a', 1, "found the string 'model_id'"),
        ("model_id = a = b", 14, "found '='"),
        ("()", 2, "expected a comparison inside '()'"),
        ("model_id = a ()", 15, "expected a comparison inside '()'"),
        ("(model_id = a", 14, "expected ')' to close the '(' at position 1"),
        ("((model_id = a)", 16, "expected ')' to close the '(' at position 1"),
        ("model_id = a)", 13, "unexpected ')' without a matching '('"),
        ("(model_id = a))", 15, "unexpected ')'"),
        (")", 1, "expected a field name, NOT or '(', found ')'"),
        ("model_id = a OR )", 17, "after 'OR', found ')'"),
    ],
)
def test_syntax_errors(text: str, pos: int, message: str) -> None:
    err = error(text)
    assert position(err) == pos, err.message
    assert message in err.message


def test_example_message_format() -> None:
    err = error("version_number >=")
    assert err.message == (
        "filter: position 18: expected a value after '>=', found the end of the filter"
    )
    assert err.field_violations[0].description == err.message.removeprefix("filter: ")


def test_long_tokens_are_shortened_in_messages() -> None:
    err = error(f"{'x' * 500} = 1")
    assert len(err.message) < 700
    assert "..." in err.message


# -- limits ------------------------------------------------------------------------------------


def test_length_limit() -> None:
    text = "model_id = " + "a" * (MAX_FILTER_LENGTH - len("model_id = "))
    assert len(text) == MAX_FILTER_LENGTH
    assert parse(text) == cmp("model_id", "=", "a" * (MAX_FILTER_LENGTH - 11))
    err = error(text + "a")
    assert position(err) == MAX_FILTER_LENGTH + 1
    assert f"longer than {MAX_FILTER_LENGTH} characters" in err.message


def test_comparison_limit() -> None:
    clauses = [f"version_number = {i}" for i in range(MAX_COMPARISONS + 1)]
    result = parse(" AND ".join(clauses[:-1]))
    assert isinstance(result, And)
    assert len(result.operands) == MAX_COMPARISONS
    text = " OR ".join(clauses)
    err = error(text)
    assert position(err) == text.rindex("version_number") + 1
    assert f"more than {MAX_COMPARISONS} comparisons" in err.message


@pytest.mark.parametrize(
    ("opener", "closer", "levels_each"),
    [("(", ")", 1), ("NOT ", "", 1), ("-", "", 1), ("NOT (", ")", 2), ("-(", ")", 2)],
)
def test_nesting_limit(opener: str, closer: str, levels_each: int) -> None:
    n = MAX_DEPTH // levels_each
    assert parse(opener * n + "model_id = a" + closer * n) is not None
    err = error(opener * (n + 1) + "model_id = a" + closer * (n + 1))
    assert position(err) == len(opener) * n + 1
    assert f"nesting is deeper than {MAX_DEPTH} levels" in err.message


def test_nesting_limit_without_closing_parentheses() -> None:
    err = error("(" * MAX_FILTER_LENGTH)
    assert position(err) == MAX_DEPTH + 1
    assert "nesting" in err.message


# -- property tests ----------------------------------------------------------------------------

_SAFE_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_STRING_FIELDS = [n for n, s in VERSION_SCHEMA.fields.items() if s.kind is FieldKind.STRING]
_MAP_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}", fullmatch=True)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_ZONES = st.sampled_from([0, 60, -300, 330, 14 * 60 - 1, -(12 * 60)])


def _fields_of(kind: FieldKind) -> list[str]:
    return [n for n, s in VERSION_SCHEMA.fields.items() if s.kind is kind]


def _string_field() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_STRING_FIELDS), _MAP_KEYS.map(lambda k: f"labels.{k}"))


_string_cmp = st.one_of(
    st.builds(
        Comparison,
        _string_field(),
        st.sampled_from([Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE, Op.HAS]),
        _TEXT,
    ),
    st.builds(
        lambda f, op, v: Comparison(f, op, v, prefix=True),
        _string_field(),
        st.sampled_from([Op.EQ, Op.NE]),
        _TEXT,
    ),
)
_presence_cmp = st.builds(
    lambda m, k: Comparison(f"{m}.{k}", Op.HAS, None),
    st.sampled_from(sorted(VERSION_SCHEMA.maps)),
    _MAP_KEYS,
)
_ORDERED = [Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE]
_number_cmp = st.builds(
    Comparison,
    _MAP_KEYS.map(lambda k: f"metrics.{k}"),
    st.sampled_from(_ORDERED),
    st.floats(allow_nan=False, allow_infinity=False),
)
_int_cmp = st.builds(
    Comparison,
    st.sampled_from(_fields_of(FieldKind.INTEGER)),
    st.sampled_from(_ORDERED),
    st.integers(-(2**63), 2**63 - 1),
)
_time_cmp = st.builds(
    Comparison,
    st.sampled_from(_fields_of(FieldKind.TIMESTAMP)),
    st.sampled_from(_ORDERED),
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
_enum_cmp = st.sampled_from(_fields_of(FieldKind.ENUM)).flatmap(
    lambda f: st.builds(
        Comparison,
        st.just(f),
        st.sampled_from([Op.EQ, Op.NE]),
        st.sampled_from(VERSION_SCHEMA.fields[f].enum_values),
    )
)
_bool_cmp = st.builds(
    Comparison, st.just("expired"), st.sampled_from([Op.EQ, Op.NE]), st.booleans()
)
comparisons = st.one_of(
    _string_cmp, _presence_cmp, _number_cmp, _int_cmp, _time_cmp, _enum_cmp, _bool_cmp
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    operands = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, operands), st.builds(Or, operands))


exprs = st.recursive(comparisons, _extend, max_leaves=16)


def normalize(expr: Expr) -> Expr:
    """Flatten And-in-And and Or-in-Or, as the parser does."""
    if isinstance(expr, Not):
        return Not(normalize(expr.operand))
    if isinstance(expr, And | Or):
        flat: list[Expr] = []
        for operand in map(normalize, expr.operands):
            if isinstance(operand, And | Or) and type(operand) is type(expr):
                flat.extend(operand.operands)
            else:
                flat.append(operand)
        return type(expr)(tuple(flat))
    return expr


def ast_depth(expr: Expr) -> int:
    if isinstance(expr, Not):
        return 1 + ast_depth(expr.operand)
    if isinstance(expr, And | Or):
        return 1 + max(map(ast_depth, expr.operands))
    return 0


def _quote(text: str, quote: str) -> str:
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("*", "\\*")
    return quote + escaped + quote


def _render_value(c: Comparison, kind: FieldKind, draw: Draw) -> str:
    value = c.value
    quote: str = draw(st.sampled_from(['"', "'"]))
    if kind is FieldKind.STRING:
        assert isinstance(value, str)
        bare_ok = _SAFE_BARE.fullmatch(value) and value not in ("AND", "OR", "NOT")
        if bare_ok and draw(st.booleans()):
            return value + ("*" if c.prefix else "")
        quoted = _quote(value, quote)
        return quoted[:-1] + "*" + quote if c.prefix else quoted
    if kind is FieldKind.TIMESTAMP:
        assert isinstance(value, datetime)
        minutes = draw(_ZONES)
        local = value.astimezone(timezone(timedelta(minutes=minutes))).isoformat()
        if draw(st.booleans()):
            local = local.replace("+00:00", "Z")
        return quote + local + quote
    if kind is FieldKind.BOOL:
        text = "true" if value else "false"
    elif kind is FieldKind.ENUM:
        text = str(value)
    else:
        text = repr(value)  # int or float
    return quote + text + quote if draw(st.booleans()) else text


def render_comparison(c: Comparison, draw: Draw) -> str:
    head, _, _ = c.field.partition(".")
    spec = VERSION_SCHEMA.fields.get(c.field) or VERSION_SCHEMA.maps[head]
    space = draw(st.sampled_from(["", " ", "  "]))
    if c.op is Op.HAS and c.value is None:
        return f"{c.field}{space}:{space}*"
    return f"{c.field}{space}{c.op.value}{space}{_render_value(c, spec.kind, draw)}"


def render(expr: Expr, draw: Draw) -> str:
    """Filter text for ``expr`` under AIP-160 precedence (NOT > OR > AND)."""
    if isinstance(expr, Comparison):
        text = render_comparison(expr, draw)
    elif isinstance(expr, Not):
        inner = render(expr.operand, draw)
        if isinstance(expr.operand, And | Or):
            inner = f"({inner})"
        text = draw(st.sampled_from(["NOT ", "-", "- "])) + inner
    elif isinstance(expr, Or):
        parts = [
            f"({render(o, draw)})" if isinstance(o, And | Or) else render(o, draw)
            for o in expr.operands
        ]
        text = " OR ".join(parts)
    else:
        parts = []
        for o in expr.operands:
            needs = isinstance(o, And) or (isinstance(o, Or) and draw(st.booleans()))
            parts.append(f"({render(o, draw)})" if needs else render(o, draw))
        text = parts[0]
        for part in parts[1:]:
            text += draw(st.sampled_from([" AND ", " ", "\n"])) + part
    return text


@PROPERTY
@given(exprs, st.data())
def test_rendered_trees_parse_back(expr: Expr, data: st.DataObject) -> None:
    assume(ast_depth(expr) <= 10)  # <= 2 nesting levels per tree level: within MAX_DEPTH
    text = render(expr, data.draw)
    assume(len(text) <= MAX_FILTER_LENGTH)
    assert parse(text) == normalize(expr)


@PROPERTY
@given(comparisons, st.data())
def test_rendered_comparisons_parse_back(c: Comparison, data: st.DataObject) -> None:
    assert parse(render_comparison(c, data.draw)) == c


def _parse_or_invalid(text: str) -> None:
    try:
        result = parse(text)
    except InvalidArgument as err:
        assert err.reason is Reason.INVALID_FILTER
        pos = position(err)
        assert 1 <= pos <= max(len(text), MAX_FILTER_LENGTH) + 1
        return
    assert result is None or isinstance(result, Comparison | And | Or | Not)


@PROPERTY
@given(st.text(max_size=400))
def test_arbitrary_text_fails_only_with_invalid_argument(text: str) -> None:
    _parse_or_invalid(text)


_FRAGMENTS = st.sampled_from(
    [
        "(", ")", " ", "AND", "OR", "NOT", "-", "=", "!=", "<", "<=", ">", ">=", ":", "!", "*",
        '"', "'", "\\", "model_id", "stage", "expired", "metrics.x", "labels.k", "labels.",
        "version_number", "create_time", "PRODUCTION", "true", "1", "-1.5e3", "1e999",
        '"2026-01-02T03:04:05Z"', "'a*'", "abc", "é", "\n",
    ]
)  # fmt: skip


@PROPERTY
@given(st.lists(_FRAGMENTS, max_size=60).map("".join))
def test_token_soup_fails_only_with_invalid_argument(text: str) -> None:
    _parse_or_invalid(text)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(MAX_DEPTH + 1, 1000),
    st.sampled_from(["(", "NOT ", "-", "- ", "NOT(", "(-"]),
    st.booleans(),
)
def test_deep_nesting_is_invalid_argument(levels: int, opener: str, close: bool) -> None:
    closer = ")" * opener.count("(")
    text = opener * levels + "model_id = a" + (closer * levels if close else "")
    err = error(text)
    if len(text) > MAX_FILTER_LENGTH:
        assert "longer than" in err.message
    else:
        assert "nesting is deeper than" in err.message


@settings(max_examples=50, deadline=None)
@given(st.integers(1, MAX_DEPTH))
def test_nesting_within_the_limit_parses(levels: int) -> None:
    assert parse("(" * levels + "model_id = a" + ")" * levels) == A
    assert parse("-" * levels + "model_id = a") is not None
