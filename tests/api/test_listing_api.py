"""ListModels / ListModelVersions through the client: AIP-160 filters on every field kind,
order_by (missing metrics last), ``models/-``, keyset paging under concurrent inserts,
show_deleted, and the INVALID_FILTER / INVALID_ORDER_BY / INVALID_PAGE_TOKEN errors."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from modelregistry.client import InvalidArgumentError, NotFoundError, RegistryClient
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.config import Config
from tests.api.registry_helpers import call, expect_error, ready_version, snapshot, unchanged
from tests.support.metadata_fixtures import BACKENDS, sqlite_url
from tests.support.servers import serving

PAST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass
class Catalog:
    """Models and versions with known field values (see :func:`build_catalog`)."""

    client: RegistryClient
    models: dict[str, res.Model]
    versions: dict[str, res.ModelVersion]  # "a1" → alpha v1 …


def build_catalog(client: RegistryClient) -> Catalog:
    """Models alpha, beta, gamma (live) and delta (deleted); versions::

    a1 READY PRODUCTION metrics{acc .9, auc .95} labels{run: a} 1 file (10 B)
    a2 READY STAGING    metrics{acc .8}          expire_time in the past (expired)
    a3 DRAFT DEVELOPMENT                        labels{run: b} expire_time in the future
    b1 DRAFT DEVELOPMENT metrics{acc .95, auc .5}
    b2 READY, deleted    metrics{acc .99}
    """
    models = {
        "alpha": client.create_model(
            "alpha",
            display_name="Fraud alpha",
            description="detects card fraud",
            type="classifier",
            author="risk",
            labels={"team": "risk", "env": "prod"},
        ),
        "beta": client.create_model(
            "beta",
            display_name="fraud beta",
            type="ranking",
            author="growth",
            labels={"team": "growth"},
        ),
        "gamma": client.create_model(
            "gamma",
            display_name="Churn",
            description="predicts churn",
            type="classifier",
            author="risk",
        ),
        "delta": client.create_model("delta", display_name="_old", type="classifier"),
    }
    client.delete_model("delta")
    models["delta"] = client.get_model("delta")
    v: dict[str, res.ModelVersion] = {}
    client.create_version(
        "alpha", description="first run", type="ONNX", author="ci",
        metrics={"acc": 0.9, "auc": 0.95}, labels={"run": "a"},
    )  # fmt: skip
    client.upload_file("alpha", 1, io.BytesIO(b"0123456789"))
    client.seal_version("alpha", 1)
    v["a1"] = client.transition_stage("alpha", 1, "STAGING")
    v["a1"] = client.transition_stage("alpha", 1, "PRODUCTION")
    ready_version(client, "alpha", description="second run", metrics={"acc": 0.8})
    client.transition_stage("alpha", 2, "STAGING")
    # Expired after its promotion (an expired version cannot be promoted).
    expired = res.ModelVersion(name="models/alpha/versions/2")
    expired.expire_time.FromDatetime(PAST)
    v["a2"] = client.update_version(expired, update_mask=["expire_time"])
    v["a3"] = client.create_version("alpha", type="PYTORCH", labels={"run": "b"},
                                    expire_time=FUTURE)  # fmt: skip
    v["b1"] = client.create_version("beta", metrics={"acc": 0.95, "auc": 0.5})
    ready_version(client, "beta", metrics={"acc": 0.99})
    v["b2"] = client.delete_version("beta", 2)
    models["alpha"] = client.get_model("alpha")
    models["beta"] = client.get_model("beta")
    return Catalog(client, models, v)


@pytest.fixture
def catalog(client: RegistryClient) -> Catalog:
    """The catalog in this test's own registry (for tests that change it)."""
    return build_catalog(client)


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalog]:
    """One registry holding the catalog per backend, shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("listing")
    if request.param == "sqlite":
        url = sqlite_url(tmp)
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    config = Config(
        listen="127.0.0.1:0",
        database_url=url,
        blob_url=f"file://{tmp / 'blobs'}",
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )
    with serving(config) as service, RegistryClient(service.address) as client:
        catalog = build_catalog(client)
        before = snapshot(client)
        yield catalog
        # The tests sharing it only read, and failing calls change nothing.
        assert snapshot(client) == before


def model_ids(client: RegistryClient, **kwargs: object) -> list[str]:
    return [m.name.split("/")[1] for m in client.list_models(**kwargs)]  # type: ignore[arg-type]


def version_keys(client: RegistryClient, parent: str = "-", **kwargs: object) -> list[str]:
    """Versions as "a1", "b2" … (first letter of the model id and the number)."""
    return [
        f"{v.name.split('/')[1][0]}{v.version_number}"
        for v in client.list_versions(parent, **kwargs)  # type: ignore[arg-type]
    ]


def when(ts: object) -> str:
    """An RFC 3339 literal for a filter."""
    assert hasattr(ts, "ToJsonString")
    return f'"{ts.ToJsonString()}"'


# -- models -----------------------------------------------------------------------------------

MODEL_FILTERS: list[tuple[str, list[str]]] = [
    ("", ["alpha", "beta", "gamma"]),
    ('model_id = "alpha"', ["alpha"]),
    ("model_id = alpha", ["alpha"]),
    ("model_id = a*", ["alpha"]),
    ("model_id != alpha", ["beta", "gamma"]),
    ("model_id > beta", ["gamma"]),
    ('display_name = "Fraud*"', ["alpha"]),  # case-sensitive prefix
    ('display_name = "fraud beta"', ["beta"]),
    ("display_name:raud", ["alpha", "beta"]),  # contains
    ('display_name:"fraud"', ["beta"]),  # case-sensitive
    ("description:card", ["alpha"]),
    ('description != ""', ["alpha", "gamma"]),
    ('description = ""', ["beta"]),
    ("type = classifier", ["alpha", "gamma"]),
    ("author = risk AND type = classifier", ["alpha", "gamma"]),
    ("author = risk type = classifier", ["alpha", "gamma"]),  # implicit AND
    ("author = growth OR type = ranking", ["beta"]),
    ("(type = ranking OR author = risk) AND labels.team = risk", ["alpha"]),
    ("type = ranking OR author = risk AND labels.team = risk", ["alpha"]),  # OR binds tighter
    ("labels.team = risk", ["alpha"]),
    ("labels.team != risk", ["beta"]),
    ("labels.team:*", ["alpha", "beta"]),
    ("-labels.team:*", ["gamma"]),
    ("NOT labels.env = prod", ["beta", "gamma"]),
    ("labels.team = gr*", ["beta"]),
    ("latest_version_number >= 1", ["alpha", "beta"]),
    ("latest_version_number = 3", ["alpha"]),
    ("latest_version_number < 1", ["gamma"]),
    ('delete_time > "1970-01-01T00:00:00Z"', []),
]


@pytest.mark.parametrize(("text", "expected"), MODEL_FILTERS, ids=[f for f, _ in MODEL_FILTERS])
def test_model_filters(shared: Catalog, text: str, expected: list[str]) -> None:
    client = shared.client
    assert model_ids(client, filter=text) == expected


def test_model_time_filters_and_show_deleted(catalog: Catalog, client: RegistryClient) -> None:
    m = catalog.models
    assert model_ids(client, filter=f"create_time > {when(m['alpha'].create_time)}") == [
        "beta",
        "gamma",
    ]
    assert model_ids(client, filter=f"create_time <= {when(m['alpha'].create_time)}") == ["alpha"]
    updated = client.update_model(res.Model(name="models/gamma", type="x"), update_mask=["type"])
    assert model_ids(client, filter=f"update_time >= {when(updated.update_time)}") == ["gamma"]
    assert model_ids(client, filter='create_time > "2000-01-01T00:00:00+02:00"') == [
        "alpha",
        "beta",
        "gamma",
    ]
    assert model_ids(client, show_deleted=True) == ["alpha", "beta", "delta", "gamma"]
    assert model_ids(client, show_deleted=True, filter='delete_time > "1970-01-01T00:00:00Z"') == [
        "delta"
    ]
    deleted_at = when(m["delta"].delete_time)
    assert model_ids(client, show_deleted=True, filter=f"delete_time >= {deleted_at}") == ["delta"]
    assert model_ids(client, filter=f"delete_time >= {deleted_at}") == []


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("", ["alpha", "beta", "gamma"]),
        ("model_id desc", ["gamma", "beta", "alpha"]),
        # Byte order, case-sensitive ("C" collation), whatever the database's locale.
        ("display_name", ["gamma", "alpha", "beta"]),
        ("display_name desc", ["beta", "alpha", "gamma"]),
        ("type, model_id desc", ["gamma", "alpha", "beta"]),
        ("latest_version_number desc, model_id", ["alpha", "beta", "gamma"]),
        ("create_time desc", ["gamma", "beta", "alpha"]),
        ("author asc, display_name desc", ["beta", "alpha", "gamma"]),
        ("labels.team", ["beta", "alpha", "gamma"]),  # missing last
        ("labels.team desc", ["alpha", "beta", "gamma"]),
    ],
)
def test_model_order_by(shared: Catalog, order_by: str, expected: list[str]) -> None:
    client = shared.client
    assert model_ids(client, order_by=order_by) == expected
    assert model_ids(client, order_by=order_by, page_size=1) == expected


# -- versions ---------------------------------------------------------------------------------

VERSION_FILTERS: list[tuple[str, list[str]]] = [
    ("", ["a1", "a2", "a3", "b1"]),
    ("model_id = alpha", ["a1", "a2", "a3"]),
    ("model_id = b*", ["b1"]),
    ("version_number > 1", ["a2", "a3"]),
    ("version_number = 1", ["a1", "b1"]),
    ('description = "first run"', ["a1"]),
    ("description:run", ["a1", "a2"]),
    ("type = ONNX", ["a1"]),
    ("type != ONNX", ["a2", "a3", "b1"]),
    ("author = ci", ["a1"]),
    ("stage = PRODUCTION", ["a1"]),
    ('stage = "STAGING"', ["a2"]),
    ("stage != DEVELOPMENT", ["a1", "a2"]),
    ("stage = PRODUCTION OR stage = STAGING", ["a1", "a2"]),
    ("state = READY", ["a1", "a2"]),
    ("state = DRAFT", ["a3", "b1"]),
    ('expire_time < "2030-01-01T00:00:00Z"', ["a2"]),
    ('expire_time > "2030-01-01T00:00:00Z"', ["a3"]),
    ('expire_time > "1970-01-01T00:00:00Z"', ["a2", "a3"]),
    ('NOT expire_time > "1970-01-01T00:00:00Z"', ["a1", "b1"]),
    ("expired = true", ["a2"]),
    ("expired = false", ["a1", "a3", "b1"]),
    ("-expired = true", ["a1", "a3", "b1"]),
    ("file_count = 1", ["a1"]),
    ("file_count = 0", ["a2", "a3", "b1"]),
    ("total_size >= 10", ["a1"]),
    ("total_size < 10", ["a2", "a3", "b1"]),
    ("labels.run = a", ["a1"]),
    ("labels.run:*", ["a1", "a3"]),
    ("metrics.acc >= 0.9", ["a1", "b1"]),
    ("metrics.acc > 0.9", ["b1"]),
    ("metrics.acc = 0.8", ["a2"]),
    ("metrics.auc < 0.9", ["b1"]),
    ("metrics.auc:*", ["a1", "b1"]),
    ("-metrics.acc:*", ["a3"]),
    ("metrics.acc >= 0.85 AND state = READY", ["a1"]),
    ("stage = PRODUCTION AND metrics.acc >= 0.9", ["a1"]),
    ('delete_time > "1970-01-01T00:00:00Z"', []),
]


@pytest.mark.parametrize(("text", "expected"), VERSION_FILTERS, ids=[f for f, _ in VERSION_FILTERS])
def test_version_filters(shared: Catalog, text: str, expected: list[str]) -> None:
    client = shared.client
    assert version_keys(client, filter=text) == expected


def test_version_filters_within_one_model_and_times(
    shared: Catalog,
) -> None:
    client, catalog = shared.client, shared
    v = catalog.versions
    assert version_keys(client, "alpha", filter="version_number >= 2") == ["a2", "a3"]
    assert version_keys(client, "beta") == ["b1"]
    assert version_keys(client, "beta", show_deleted=True) == ["b1", "b2"]
    assert version_keys(client, "gamma") == []
    assert version_keys(client, filter=f"create_time > {when(v['a3'].create_time)}") == ["b1"]
    assert version_keys(client, filter=f"update_time >= {when(v['a2'].update_time)}") == [
        "a2",
        "a3",
        "b1",
    ]
    assert version_keys(
        client, show_deleted=True, filter='delete_time > "1970-01-01T00:00:00Z"'
    ) == ["b2"]
    deleted = when(v["b2"].delete_time)
    assert version_keys(client, show_deleted=True, filter=f"delete_time >= {deleted}") == ["b2"]
    assert version_keys(client, show_deleted=True, filter="metrics.acc > 0.98") == ["b2"]


@pytest.mark.parametrize(
    ("order_by", "show_deleted", "expected"),
    [
        ("", False, ["a1", "a2", "a3", "b1"]),
        ("metrics.acc desc", False, ["b1", "a1", "a2", "a3"]),
        ("metrics.acc desc", True, ["b2", "b1", "a1", "a2", "a3"]),
        ("metrics.acc", False, ["a2", "a1", "b1", "a3"]),  # missing last ascending too
        ("metrics.auc desc, create_time", False, ["a1", "b1", "a2", "a3"]),
        ("metrics.auc, version_number desc", False, ["b1", "a1", "a3", "a2"]),
        ("version_number desc, model_id desc", False, ["a3", "a2", "b1", "a1"]),
        ("state, create_time desc", False, ["b1", "a3", "a2", "a1"]),
        ("expire_time", False, ["a2", "a3", "a1", "b1"]),
        ("expire_time desc", False, ["a3", "a2", "a1", "b1"]),
        ("file_count desc, total_size, model_id desc", False, ["a1", "b1", "a2", "a3"]),
        ("labels.run desc", False, ["a3", "a1", "a2", "b1"]),
        ("delete_time desc, create_time", True, ["b2", "a1", "a2", "a3", "b1"]),
        ("type, author desc", False, ["a2", "b1", "a1", "a3"]),
    ],
)
def test_version_order_by(
    shared: Catalog,
    order_by: str,
    show_deleted: bool,
    expected: list[str],
) -> None:
    client = shared.client
    assert version_keys(client, order_by=order_by, show_deleted=show_deleted) == expected
    paged = version_keys(client, order_by=order_by, show_deleted=show_deleted, page_size=1)
    assert paged == expected


def test_order_by_stage_groups_and_pages_consistently(
    shared: Catalog,
) -> None:
    client, catalog = shared.client, shared
    # Which way enum values sort (by name or by number) is not specified; only check that
    # equal stages are grouped, ties are broken by creation, and paging agrees.
    for order_by in ("stage", "stage desc"):
        listed = list(client.list_versions(order_by=order_by))
        assert [v.name for v in client.list_versions(order_by=order_by, page_size=1)] == [
            v.name for v in listed
        ]
        stages = [v.stage for v in listed]
        assert stages.count(res.STAGE_DEVELOPMENT) == 2
        first = stages.index(res.STAGE_DEVELOPMENT)
        assert stages[first + 1] == res.STAGE_DEVELOPMENT
        assert [v.name for v in listed[first : first + 2]] == [
            catalog.versions["a3"].name,
            catalog.versions["b1"].name,
        ]


def test_models_dash_parent_only_for_versions(
    shared: Catalog,
) -> None:
    client = shared.client
    with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
        client.list_versions_page("nope")
    for parent in ("models/Bad", "models", "", "models/-/versions/1", "models/*"):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
            call(client, "ListModelVersions", mr.ListModelVersionsRequest(parent=parent))
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
        client.get_model("-")


def test_like_wildcards_and_dotted_keys_are_literal(client: RegistryClient) -> None:
    client.create_model("pct", description="100% sure_thing", display_name="a_b")
    client.create_model("plain", description="1000 sure thing", display_name="axb")
    client.create_model("dotted", labels={"cost.center": "c1"})
    assert model_ids(client, filter='description:"0% s"') == ["pct"]
    assert model_ids(client, filter='description:"e_t"') == ["pct"]
    assert model_ids(client, filter='display_name = "a_*"') == ["pct"]
    assert model_ids(client, filter='display_name = "a\\*"') == []  # a literal star
    assert model_ids(client, filter='labels.cost.center = "c1"') == ["dotted"]
    client.create_version("dotted", metrics={"val.acc": 0.5, "val": 0.1})
    client.create_version("dotted", metrics={"val.acc": 0.7})
    assert version_keys(client, filter="metrics.val.acc > 0.6") == ["d2"]
    assert version_keys(client, order_by="metrics.val.acc desc") == ["d2", "d1"]
    assert version_keys(client, order_by="metrics.val desc") == ["d1", "d2"]


def test_versions_of_a_soft_deleted_model(catalog: Catalog, client: RegistryClient) -> None:
    client.create_model("omega")
    client.create_version("omega")
    client.delete_model("omega", force=True)
    assert version_keys(client, "omega") == []
    assert version_keys(client, "omega", show_deleted=True) == ["o1"]


# -- errors -----------------------------------------------------------------------------------

BAD_FILTERS: list[tuple[str, int | None]] = [
    ("type =", 7),
    ("type = classifier AND foo = 1", 23),
    ("latest_version_number = abc", None),
    ("(type = x", None),
    ("type = x)", None),
    ('create_time > "yesterday"', None),
    ("create_time > 5", None),
    ("latest_version_number = 99999999999999999999", None),
    ("type = x AND", None),
    ("type = x OR OR type = y", None),
    ("= x", 1),
    ('type = "unterminated', 8),
    ("type ! x", 6),
    ("labels.Bad Key = x", None),
    ("labels = x", None),
    ("labels. = x", None),
    ("x" * 2001, None),
    ("(" * 40 + "type = x" + ")" * 40, None),
]


@pytest.mark.parametrize(("text", "position"), BAD_FILTERS, ids=[f[:30] for f, _ in BAD_FILTERS])
def test_bad_model_filter(shared: Catalog, text: str, position: int | None) -> None:
    client = shared.client
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter") as info:
        client.list_models_page(filter=text)
    assert re.search(r"position \d+", info.value.message), info.value.message
    if position is not None:
        assert f"position {position}:" in info.value.message, info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "stage = NOPE",
        "stage > PRODUCTION",
        "state = SEALED",
        "metrics.acc = high",
        "metrics.acc = nan",
        "expired = maybe",
        "version_number = 1.5",
        "display_name = x",  # a model field, not a version field
        "file_count = -",
        "expire_time < 2020",
        "metrics.acc > 1e400",
        "version_number = 9223372036854775808",
        "stage:PRODUCTION",
        "expired:*",
        "expired = TRUE",
        "metrics.acc:1",
    ],
)
def test_bad_version_filter(shared: Catalog, text: str) -> None:
    client = shared.client
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter") as info:
        client.list_versions_page("alpha", filter=text)
    assert re.search(r"position \d+", info.value.message), info.value.message


@pytest.mark.parametrize(
    ("parent", "order_by"),
    [
        ("-", "expired"),
        ("-", "foo"),
        ("-", "type sideways"),
        ("-", "type desc extra"),
        ("-", "type, type desc"),
        ("-", "metrics."),
        ("-", "metrics"),
        ("-", ", type"),
        ("-", "labels.bad key"),
        ("-", "display_name"),
        (None, "stage"),
        (None, "metrics.acc"),
        (None, "model_id,"),
    ],
)
def test_bad_order_by(shared: Catalog, parent: str | None, order_by: str) -> None:
    client = shared.client
    with expect_error(InvalidArgumentError, "INVALID_ORDER_BY", field="order_by"):
        if parent is None:
            client.list_models_page(order_by=order_by)
        else:
            client.list_versions_page(parent, order_by=order_by)


def test_bad_page_size_and_huge_page_size(
    shared: Catalog,
) -> None:
    client = shared.client
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="page_size"):
        client.list_models_page(page_size=-1)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="page_size"):
        client.list_versions_page(page_size=-5)
    page = client.list_versions_page(page_size=1_000_000)
    assert len(page.model_versions) == 4 and page.next_page_token == ""


def test_bad_and_foreign_page_tokens(
    shared: Catalog,
) -> None:
    client = shared.client
    models_token = client.list_models_page(page_size=1).next_page_token
    versions_token = client.list_versions_page(page_size=1).next_page_token
    alpha_token = client.list_versions_page("alpha", page_size=1).next_page_token
    assert models_token and versions_token and alpha_token
    mismatched: list[Callable[[], object]] = [
        lambda: client.list_versions_page(page_token=models_token, page_size=1),
        lambda: client.list_models_page(page_token=versions_token, page_size=1),
        lambda: client.list_versions_page("beta", page_token=alpha_token, page_size=1),
        lambda: client.list_versions_page("-", page_token=alpha_token, page_size=1),
        lambda: client.list_versions_page(page_token=versions_token, filter="type = x"),
        lambda: client.list_versions_page(page_token=versions_token, order_by="create_time"),
        lambda: client.list_versions_page(page_token=versions_token, show_deleted=True),
        lambda: client.list_models_page(page_token=models_token, order_by="model_id desc"),
    ]
    for attempt in mismatched:
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            attempt()
    for garbage in ("not a token", "%%%", "e30", "W10", "eyJjIjoxfQ", models_token[:-3], "A"):
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            client.list_models_page(page_token=garbage)
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            client.list_versions_page(page_token=garbage)
    # A different page size with the same query is fine.
    assert client.list_versions_page(page_token=versions_token, page_size=10).model_versions


def test_nul_characters_in_filter_values(shared: Catalog) -> None:
    client = shared.client
    for text in ('display_name = "a\x00b"', 'labels.team = "\x00"', 'description:"\x00"'):
        with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter", case=text):
            client.list_models_page(filter=text)
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter"):
        client.list_versions_page(filter='labels.run = "a\x00"')


def test_listing_errors_change_nothing(
    shared: Catalog,
) -> None:
    client = shared.client
    with unchanged(client), expect_error(InvalidArgumentError, "INVALID_FILTER"):
        client.list_versions_page(filter="nope = 1")


# -- paging under concurrent inserts ----------------------------------------------------------


def _collect(
    client: RegistryClient,
    *,
    order_by: str,
    page_size: int,
    between_pages: Callable[[int], None],
) -> list[res.ModelVersion]:
    seen: list[res.ModelVersion] = []
    token = ""
    page_number = 0
    while True:
        page = client.list_versions_page(page_size=page_size, page_token=token, order_by=order_by)
        assert len(page.model_versions) <= page_size
        seen.extend(page.model_versions)
        token = page.next_page_token
        if not token:
            return seen
        page_number += 1
        between_pages(page_number)


def test_paging_sees_every_row_once_while_rows_are_added(client: RegistryClient) -> None:
    for model in ("mid", "early", "zlate"):
        client.create_model(model)
    originals: set[str] = set()
    for i in range(120):
        metrics = {"score": float(i % 7)} if i % 3 else {}
        originals.add(client.create_version("mid", metrics=metrics).name)

    first = client.list_versions_page("mid")  # page_size 0: the default, 50
    assert len(first.model_versions) == 50 and first.next_page_token
    assert len(client.list_versions_page("mid", page_size=200).model_versions) == 120

    added: list[str] = []

    def add(page_number: int) -> None:
        # Rows before the cursor, after it and (for score order) missing the key.
        added.append(client.create_version("early", metrics={"score": 100.0}).name)
        added.append(client.create_version("zlate", metrics={"score": -1.0}).name)
        added.append(client.create_version("mid").name)

    for order_by, page_size in (("", 7), ("metrics.score desc", 11), ("create_time desc", 13)):
        seen = _collect(client, order_by=order_by, page_size=page_size, between_pages=add)
        names = [v.name for v in seen]
        assert len(names) == len(set(names)), f"{order_by!r}: a row was repeated"
        assert originals <= set(names), f"{order_by!r}: rows were skipped"
        assert set(names) - originals <= set(added)
        if order_by == "":
            keys = [(v.name.split("/")[1], v.version_number) for v in seen]
            assert keys == sorted(keys)
            # Appended rows of `mid` and `zlate` lie after the cursor and are seen.
            assert any("/zlate/" in n for n in names)
        elif order_by.startswith("metrics"):
            scores = [v.metrics["score"] for v in seen if "score" in v.metrics]
            assert scores == sorted(scores, reverse=True)
            first_missing = next(i for i, v in enumerate(seen) if "score" not in v.metrics)
            assert all("score" not in v.metrics for v in seen[first_missing:])
        else:
            times = [v.create_time.ToDatetime() for v in seen]
            assert times == sorted(times, reverse=True)

    # Everything is still listed exactly once when nothing changes in between.
    everything = _collect(client, order_by="", page_size=50, between_pages=lambda _: None)
    assert len(everything) == 120 + len(added)
    assert len({v.name for v in everything}) == len(everything)
