"""How the command line names versions (``MODEL:N``, ``MODEL@ALIAS`` …)."""

from __future__ import annotations

import click
import pytest

from modelregistry.cli.refs import VersionSpec, parse_version, parse_versions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", VersionSpec("fraud", "latest")),
        ("fraud:3", VersionSpec("fraud", 3)),
        ("fraud:latest", VersionSpec("fraud", "latest")),
        ("fraud@production", VersionSpec("fraud", "production")),
        ("fraud:-", VersionSpec("fraud", "-")),
        ("-", VersionSpec("-", "-")),
        ("models/fraud/versions/7", VersionSpec("fraud", 7)),
        ("models/fraud/versions/prod", VersionSpec("fraud", "prod")),
        ("models/fraud", VersionSpec("fraud", "latest")),
    ],
)
def test_version_references(text: str, expected: VersionSpec) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["fraud:x", "@prod", "fraud@", ":3", "models/a/b", "fraud:"])
def test_malformed_references_are_bad_parameters(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_version(text)


def test_in_a_list_a_bare_reference_takes_the_model_before_it() -> None:
    assert parse_versions(("fraud:3", "4", "@production", ":latest", "ads@x", "2")) == [
        VersionSpec("fraud", 3),
        VersionSpec("fraud", 4),
        VersionSpec("fraud", "production"),
        VersionSpec("fraud", "latest"),
        VersionSpec("ads", "x"),
        VersionSpec("ads", 2),
    ]
    assert str(VersionSpec("fraud", 3)) == "fraud:3"
    assert str(VersionSpec("fraud", "production")) == "fraud@production"
