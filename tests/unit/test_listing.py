"""Tests for the listing rules (domain/listing.py): page size, order_by and page tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MODEL_DEFAULT_ORDER,
    MODEL_SCHEMA,
    VERSION_DEFAULT_ORDER,
    VERSION_SCHEMA,
    PageTokens,
    check_page_size,
    parse_order_by,
    query_fingerprint,
    single_cursor,
)
from modelregistry_server.domain.ports import OrderKey

PROPERTY = settings(max_examples=200, deadline=None)
SECRET = b"unit-test-secret-0123456789"
TOKENS = PageTokens(SECRET)
FP = query_fingerprint("models/m", "stage = PRODUCTION", "create_time desc", False)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(raw: bytes, secret: bytes = SECRET) -> str:
    """A token with payload ``raw``, signed as the service signs (tests what lies past the MAC)."""
    key = hashlib.sha256(b"modelregistry.v1 page token\x00" + secret).digest()
    payload = _b64(raw)
    return f"{payload}.{_b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])}"


# -- page size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "effective"),
    [
        (0, DEFAULT_PAGE_SIZE),
        (1, 1),
        (50, 50),
        (MAX_PAGE_SIZE, MAX_PAGE_SIZE),
        (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE),
        (2**31 - 1, MAX_PAGE_SIZE),
    ],
)
def test_page_size_is_defaulted_and_coerced(requested: int, effective: int) -> None:
    assert check_page_size(requested) == effective


@pytest.mark.parametrize("requested", [-1, -(2**31)])
def test_negative_page_size_is_rejected(requested: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_page_size(requested)
    assert info.value.reason is Reason.INVALID_ARGUMENT
    assert info.value.field_violations[0].field == "page_size"
    assert "negative" in info.value.message


def test_page_size_constants() -> None:
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (50, 1000)


# -- order_by ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_blank_order_by_is_the_default(text: str) -> None:
    assert parse_order_by(text, VERSION_SCHEMA, VERSION_DEFAULT_ORDER) == VERSION_DEFAULT_ORDER
    assert parse_order_by(text, MODEL_SCHEMA, MODEL_DEFAULT_ORDER) == MODEL_DEFAULT_ORDER


def test_default_orders() -> None:
    assert (OrderKey("model_id"),) == MODEL_DEFAULT_ORDER
    assert (OrderKey("model_id"), OrderKey("version_number")) == VERSION_DEFAULT_ORDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("create_time", (OrderKey("create_time"),)),
        ("create_time desc", (OrderKey("create_time", descending=True),)),
        ("create_time asc", (OrderKey("create_time"),)),
        ("create_time DESC", (OrderKey("create_time", descending=True),)),
        ("create_time Asc", (OrderKey("create_time"),)),
        (
            "metrics.accuracy desc, create_time",
            (OrderKey("metrics.accuracy", descending=True), OrderKey("create_time")),
        ),
        (
            "  stage ,version_number   desc ,labels.team  ",
            (
                OrderKey("stage"),
                OrderKey("version_number", descending=True),
                OrderKey("labels.team"),
            ),
        ),
        ("labels.a.b-c_D", (OrderKey("labels.a.b-c_D"),)),
        ("metrics.x desc, metrics.y", (OrderKey("metrics.x", True), OrderKey("metrics.y"))),
    ],
)
def test_order_by_is_parsed(text: str, expected: tuple[OrderKey, ...]) -> None:
    assert parse_order_by(text, VERSION_SCHEMA, VERSION_DEFAULT_ORDER) == expected


def test_order_by_uses_the_given_schema() -> None:
    assert parse_order_by("display_name desc", MODEL_SCHEMA, MODEL_DEFAULT_ORDER) == (
        OrderKey("display_name", descending=True),
    )
    with pytest.raises(InvalidArgument, match="cannot order by 'display_name'"):
        parse_order_by("display_name", VERSION_SCHEMA, VERSION_DEFAULT_ORDER)
    with pytest.raises(InvalidArgument, match=r"cannot order by 'metrics\.accuracy'"):
        parse_order_by("metrics.accuracy", MODEL_SCHEMA, MODEL_DEFAULT_ORDER)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (",", "cannot parse term ''"),
        ("create_time,", "cannot parse term ''"),
        ("create_time,,stage", "cannot parse term ''"),
        ("create_time desc extra", "cannot parse term 'create_time desc extra'"),
        ("create_time descending", "direction must be 'asc' or 'desc', got 'descending'"),
        ("create_time -1", "direction must be 'asc' or 'desc'"),
        ("colour", "cannot order by 'colour'"),
        ("Create_time", "cannot order by 'Create_time'"),
        ("expired", "cannot order by 'expired'"),  # not orderable
        ("labels", "cannot order by 'labels'"),
        ("labels.", "cannot order by 'labels.'"),
        ("labels.1x", "cannot order by 'labels.1x'"),
        ("labels.a\"b';drop", "cannot order by"),
        ("labels.a*", "cannot order by 'labels.a*'"),
        (f"metrics.{'k' * 64}", "cannot order by"),
        ("stage.x", "cannot order by 'stage.x'"),
        ("create_time, create_time desc", "'create_time' appears twice"),
        ("labels.a, stage, labels.a", "'labels.a' appears twice"),
    ],
)
def test_bad_order_by_is_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_order_by(text, VERSION_SCHEMA, VERSION_DEFAULT_ORDER)
    err = info.value
    assert err.reason is Reason.INVALID_ORDER_BY
    assert err.field_violations[0].field == "order_by"
    assert err.message.startswith("order_by: ")
    assert message in err.message


def test_map_key_length_limit_in_order_by() -> None:
    name = f"metrics.{'k' * 63}"
    assert parse_order_by(name, VERSION_SCHEMA, ()) == (OrderKey(name),)


@PROPERTY
@given(st.text(max_size=200))
def test_order_by_fails_only_with_invalid_argument(text: str) -> None:
    try:
        keys = parse_order_by(text, VERSION_SCHEMA, VERSION_DEFAULT_ORDER)
    except InvalidArgument as err:
        assert err.reason is Reason.INVALID_ORDER_BY
        return
    assert all(isinstance(k, OrderKey) for k in keys)


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_short() -> None:
    assert query_fingerprint("models/m", "stage = PRODUCTION", "create_time desc", False) == FP
    assert len(FP) == 16
    assert int(FP, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        ("models/n", "stage = PRODUCTION", "create_time desc", False),
        ("models/m", "stage = STAGING", "create_time desc", False),
        ("models/m", "stage = PRODUCTION", "create_time", False),
        ("models/m", "stage = PRODUCTION", "create_time desc", True),
        ("stage = PRODUCTION", "models/m", "create_time desc", False),
        ("models/m", "stage = PRODUCTION", "create_time desc"),
    ],
)
def test_fingerprint_depends_on_every_part(other: tuple[object, ...]) -> None:
    assert query_fingerprint(*other) != FP


def test_fingerprint_parts_do_not_run_together() -> None:
    assert query_fingerprint("a,b") != query_fingerprint("a", "b")
    assert query_fingerprint('a","b') != query_fingerprint("a", "b")


# -- page tokens -------------------------------------------------------------------------------


def test_no_next_page_is_the_empty_token() -> None:
    assert TOKENS.encode(None, FP) == ""
    assert TOKENS.decode("", FP) is None


@pytest.mark.parametrize(
    "cursor",
    [
        ("fraud-detector", 7),
        ("2026-01-02T03:04:05.123456+00:00", "m", 1),
        (0.125, None, True, False, -3),
        ("ünïcødé ☃", 'quote"back\\slash', ""),
        (2**63 - 1, -(2**63)),
        (),
    ],
)
def test_page_token_round_trip(cursor: tuple[Any, ...]) -> None:
    token = TOKENS.encode(cursor, FP)
    assert token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert TOKENS.decode(token, FP) == cursor


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)


@PROPERTY
@given(st.lists(_scalars, max_size=6).map(tuple), st.text(max_size=20))
def test_page_token_round_trip_property(cursor: tuple[Any, ...], fingerprint: str) -> None:
    decoded = TOKENS.decode(TOKENS.encode(cursor, fingerprint), fingerprint)
    assert decoded == cursor
    assert decoded is not None
    assert [type(v) for v in decoded] == [type(v) for v in cursor]


def test_padded_token_is_accepted() -> None:
    payload, mac = TOKENS.encode(("a", 1), FP).split(".")
    padded = f"{payload}{'=' * (-len(payload) % 4)}.{mac}{'=' * (-len(mac) % 4)}"
    assert TOKENS.decode(padded, FP) == ("a", 1)


def _token_error(token: str, fingerprint: str = FP) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        TOKENS.decode(token, fingerprint)
    err = info.value
    assert err.reason is Reason.INVALID_PAGE_TOKEN
    assert err.field_violations[0].field == "page_token"
    assert err.message.startswith("page_token: ")
    return err


def test_token_for_another_query_is_rejected() -> None:
    token = TOKENS.encode(("a", 1), FP)
    other = query_fingerprint("models/m", "stage = STAGING", "create_time desc", False)
    err = _token_error(token, other)
    assert "different parent, filter or order_by" in err.message


def test_token_without_fingerprint_is_rejected() -> None:
    err = _token_error(_signed(json.dumps({"c": ["a"]}).encode()))
    assert "different" in err.message


def test_forged_tokens_are_rejected() -> None:
    """The fingerprint is computable by anyone; without the secret no token verifies."""
    doc = json.dumps({"c": ["zzz", 1], "f": FP}, separators=(",", ":")).encode()
    for forged in (
        _b64(doc),  # the unsigned format
        _b64(doc) + ".",
        _b64(doc) + "." + _b64(b"\x00" * 16),
        _signed(doc, b"another-secret-0123456789"),
        PageTokens(b"another-secret-0123456789").encode(("zzz", 1), FP),
    ):
        assert "not a token this service issued" in _token_error(forged).message
    assert TOKENS.decode(_signed(doc), FP) == ("zzz", 1)


def test_signed_payload_cannot_be_swapped() -> None:
    """A MAC of one payload does not verify another (cursor edited, MAC kept)."""
    payload, mac = TOKENS.encode(("a", 1), FP).split(".")
    other, _ = TOKENS.encode(("b", 2), FP).split(".")
    _token_error(f"{other}.{mac}")
    _token_error(f"{payload}.{mac[:-1]}")


@pytest.mark.parametrize(
    ("cursor", "kind", "message"),
    [
        ((2**63,), int, "out of range"),
        ((-(2**63) - 1,), int, "out of range"),
        ((10**30,), int, "out of range"),
        (("a\x00b",), str, "NUL"),
    ],
)
def test_single_cursor_values_the_store_cannot_hold(
    cursor: tuple[Any, ...], kind: type[Any], message: str
) -> None:
    decoded = TOKENS.decode(_signed(json.dumps({"c": list(cursor), "f": FP}).encode()), FP)
    with pytest.raises(InvalidArgument) as info:
        single_cursor(decoded, kind)
    assert info.value.reason is Reason.INVALID_PAGE_TOKEN
    assert message in info.value.message


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PageTokens(b"short")


_VALID = TOKENS.encode(("fraud-detector", 7), FP)


_PAYLOADS = [
    b"\xff\xfe\xfd",  # not UTF-8
    b"not json",
    b'["c", "f"]',  # not an object
    b"null",
    b'{"f": "x"}',  # no cursor
    json.dumps({"c": "abc", "f": FP}).encode(),  # cursor not a list
    json.dumps({"c": {"a": 1}, "f": FP}).encode(),
    json.dumps({"c": [["nested"]], "f": FP}).encode(),
    json.dumps({"c": [{"a": 1}], "f": FP}).encode(),
    b"[" * 100_000,  # nesting deeper than the JSON decoder's recursion limit
    b'{"c": [1' + b"0" * 5000 + b'], "f": "x"}',  # integer too long to decode
]


@pytest.mark.parametrize(
    "token",
    [
        *(_signed(p) for p in _PAYLOADS),  # signed, so the parser itself must refuse them
        *(_b64(p) for p in _PAYLOADS),
        "not a token",
        "!!!!",
        "a",  # impossible base64 length
        _VALID[:-1],  # truncated
        _VALID[:10],
        _VALID + "\n",
        " " + _VALID,
        _VALID[:8] + "!!!!" + _VALID[8:],  # junk the base64 decoder would skip
        _VALID[:8] + "+/" + _VALID[8:],  # standard (not URL-safe) alphabet
        _VALID + "===",
        "é" + _VALID,
    ],
)
def test_malformed_or_tampered_tokens_are_rejected(token: str) -> None:
    _token_error(token)


@PROPERTY
@given(st.text(max_size=200))
def test_arbitrary_tokens_fail_only_with_invalid_page_token(token: str) -> None:
    try:
        cursor = TOKENS.decode(token, FP)
    except InvalidArgument as err:
        assert err.reason is Reason.INVALID_PAGE_TOKEN
        return
    assert cursor is None or isinstance(cursor, tuple)


@PROPERTY
@given(st.data())
def test_edited_tokens_fail_only_with_invalid_page_token(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(_VALID) - 1))
    char = data.draw(st.characters(codec="ascii"))
    token = _VALID[:index] + char + _VALID[index + 1 :]
    try:
        cursor = TOKENS.decode(token, FP)
    except InvalidArgument as err:
        assert err.reason is Reason.INVALID_PAGE_TOKEN
        return
    # Tokens are signed: only the unedited token decodes.
    assert token == _VALID
    assert cursor == ("fraud-detector", 7)
