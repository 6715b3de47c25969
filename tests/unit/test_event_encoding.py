"""The canonical encoding an event's hash covers is fixed: stored chains keep verifying."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from modelregistry_server.domain.events import (
    Event,
    EventKind,
    canonical,
    canonical_around_sequence,
    chain_hash,
)


def sample(sequence: int = 42, **changes: object) -> Event:
    event = Event(
        tenant="acme",
        time=datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC),
        principal="user:ana",
        method="/modelregistry.v1.ModelRegistry/UpdateModel",
        resource="models/résumé-ß",
        summary={"z": 1, "a": ["ü", None, 2.5], "m": {"y": '\x00"\\', "b": True}},
        request_id="r-1",
        etag_before="e1",
        etag_after="e2",
        sequence=sequence,
    )
    for name, value in changes.items():
        setattr(event, name, value)
    return event


def test_encoding_version_1_is_pinned() -> None:
    """Changing these bytes breaks every stored chain: bump ENCODING_VERSION instead."""
    expected = (
        '[1,"acme",42,1796299200123456,"CHANGE","user:ana",'
        '"/modelregistry.v1.ModelRegistry/UpdateModel","models/résumé-ß","OK","r-1","e1","e2",'
        '{"a":["ü",null,2.5],"m":{"b":true,"y":"\\u0000\\"\\\\"},"z":1}]'
    )
    assert canonical(sample()).decode() == expected
    assert chain_hash("ab" * 32, sample()) == (
        "becbfb2982c37ae769792c24108e823d5512fb1f1e527ea4e2708a8fa67dee51"
    )


@pytest.mark.parametrize("sequence", [1, 9, 10, 12345678901234])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"tenant": 'ten"ant,1'},
        {"summary": {}},
        {"kind": EventKind.ACCESS, "outcome": "PERMISSION_DENIED"},
    ],
)
def test_the_parts_around_the_sequence_make_the_canonical_bytes(
    sequence: int, changes: dict[str, object]
) -> None:
    """A store hashing in SQL joins ``before + sequence + after``: the bytes of the whole
    array written at once."""
    event = sample(sequence, **changes)
    before, after = canonical_around_sequence(event)
    micros = int((event.time - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**6
    whole = [
        1,
        event.tenant,
        sequence,
        micros + event.time.microsecond,
        event.kind.value,
        event.principal,
        event.method,
        event.resource,
        event.outcome,
        event.request_id,
        event.etag_before,
        event.etag_after,
        event.summary,
    ]
    text = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert before + str(sequence).encode() + after == text.encode() == canonical(event)
