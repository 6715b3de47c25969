"""Resource-name helpers of the client."""

from __future__ import annotations

import pytest

from modelregistry.client.names import (
    AliasName,
    FileName,
    ModelName,
    VersionName,
    alias_name,
    alias_ref,
    file_name,
    file_ref,
    model_id_of,
    model_name,
    model_ref,
    parse_alias_name,
    parse_file_name,
    parse_model_name,
    parse_version_name,
    version_name,
    version_ref,
)


def test_builders() -> None:
    assert model_name("fraud") == "models/fraud"
    assert version_name("fraud", 3) == "models/fraud/versions/3"
    assert version_name("fraud", "3") == "models/fraud/versions/3"
    assert version_name("fraud", "latest") == "models/fraud/versions/latest"
    assert version_name("fraud", "champion") == "models/fraud/versions/champion"
    assert file_name("fraud", 2) == "models/fraud/versions/2/files/payload"
    assert (
        file_name("fraud", "latest", "tokenizer/vocab.json")
        == "models/fraud/versions/latest/files/tokenizer/vocab.json"
    )
    assert alias_name("fraud", "champion") == "models/fraud/aliases/champion"


@pytest.mark.parametrize(
    "model_id", ["", "Fraud", "1fraud", "fr_aud", "a/b", "a" * 64, "models/fraud", " fraud"]
)
def test_invalid_model_ids(model_id: str) -> None:
    with pytest.raises(ValueError, match="model id"):
        model_name(model_id)


@pytest.mark.parametrize("version", [0, -1, True, "", "0", "01", "1.5", "a/b", "Latest", 2.0])
def test_invalid_versions(version: object) -> None:
    with pytest.raises(ValueError, match="version"):
        version_name("fraud", version)  # type: ignore[arg-type]  # deliberately wrong types


@pytest.mark.parametrize(
    "file_id", ["", "/abs", "a//b", "a/", "./a", "a/../b", "..", "a\nb", "a\x00", "x" * 513]
)
def test_invalid_file_ids(file_id: str) -> None:
    with pytest.raises(ValueError, match="file id"):
        file_name("fraud", 1, file_id)


def test_max_lengths_accepted() -> None:
    assert model_name("a" * 63) == "models/" + "a" * 63
    assert file_name("m", 1, "x" * 512).endswith("/" + "x" * 512)


@pytest.mark.parametrize("alias", ["latest", "", "Champion", "9lives", "a/b"])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(ValueError, match="alias"):
        alias_name("fraud", alias)


def test_parsers_round_trip() -> None:
    assert parse_model_name("models/fraud") == ModelName("fraud")
    v = parse_version_name("models/fraud/versions/12")
    assert v == VersionName("fraud", "12")
    assert v.number == 12
    assert v.name == "models/fraud/versions/12"
    assert str(v) == "models/fraud/versions/12"
    latest = parse_version_name("models/fraud/versions/latest")
    assert latest.number is None
    f = parse_file_name("models/fraud/versions/3/files/tokenizer/vocab.json")
    assert f == FileName("fraud", "3", "tokenizer/vocab.json")
    assert f.name == "models/fraud/versions/3/files/tokenizer/vocab.json"
    a = parse_alias_name("models/fraud/aliases/champion")
    assert a == AliasName("fraud", "champion")
    assert str(a) == "models/fraud/aliases/champion"
    assert str(parse_model_name("models/x")) == "models/x"


@pytest.mark.parametrize(
    ("parser", "name"),
    [
        (parse_model_name, "fraud"),
        (parse_model_name, "models/"),
        (parse_model_name, "models/Fraud"),
        (parse_model_name, "models/fraud/versions/1"),
        (parse_model_name, "projects/fraud"),
        (parse_version_name, "models/fraud"),
        (parse_version_name, "models/fraud/versions/"),
        (parse_version_name, "models/fraud/versions/0"),
        (parse_version_name, "models/fraud/aliases/1"),
        (parse_version_name, "models/fraud/versions/1/files/payload"),
        (parse_file_name, "models/fraud/versions/1/files/"),
        (parse_file_name, "models/fraud/versions/1/files/a//b"),
        (parse_file_name, "models/fraud/versions/1/payload"),
        (parse_file_name, "models/fraud/aliases/1/files/payload"),
        (parse_alias_name, "models/fraud/aliases/latest"),
        (parse_alias_name, "models/fraud/versions/champion"),
        (parse_alias_name, "models/fraud/aliases/a/b"),
    ],
)
def test_parsers_reject_malformed_names(parser: object, name: str) -> None:
    with pytest.raises(ValueError):
        parser(name)  # type: ignore[operator]  # parametrized callables


def test_parsers_reject_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_model_name(None)  # type: ignore[arg-type]  # deliberately wrong type


def test_unchecked_refs_accept_ids_and_full_names() -> None:
    assert model_ref("fraud") == model_ref("models/fraud") == "models/fraud"
    assert model_id_of("models/fraud") == model_id_of("fraud") == "fraud"
    assert version_ref("fraud", 3) == "models/fraud/versions/3"
    assert version_ref("models/fraud", "latest") == "models/fraud/versions/latest"
    assert version_ref("ignored", "models/x/versions/2") == "models/x/versions/2"
    assert file_ref("fraud", 1) == "models/fraud/versions/1/files/payload"
    assert file_ref("fraud", 1, "a/b.json") == "models/fraud/versions/1/files/a/b.json"
    assert alias_ref("fraud", "prod") == "models/fraud/aliases/prod"
    assert alias_ref("fraud", "models/x/aliases/y") == "models/x/aliases/y"


def test_unchecked_refs_leave_validation_to_the_server() -> None:
    """Malformed ids pass through, so the server answers INVALID_ARGUMENT naming the field."""
    assert model_ref("Bad Id") == "models/Bad Id"
    assert version_ref("m", 0) == "models/m/versions/0"
    assert file_ref("m", 1, "../x") == "models/m/versions/1/files/../x"


@pytest.mark.parametrize("version", [True, 1.5, None])
def test_version_ref_rejects_other_types(version: object) -> None:
    with pytest.raises(TypeError, match="version"):
        version_ref("m", version)  # type: ignore[arg-type]  # deliberately wrong types
