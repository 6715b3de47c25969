"""Lineage through the client: GetLineage up- and downstream, depth limits, cycles, deleted
versions, starting from a dataset, the lineage filters of ListModelVersions, and deletes that
are refused while other versions were produced by the target."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modelregistry.client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import lineage_pb2 as lpb
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.domain import lineage as lineage_rules
from tests.api.registry_helpers import call, expect_error, ready_version, unchanged

TRAIN, EVAL, RAW = "gs://d/train", "gs://d/eval", "gs://d/raw"


def v(model: str, number: int) -> str:
    return f"models/{model}/versions/{number}"


@pytest.fixture
def world(client: RegistryClient) -> RegistryClient:
    """::

    features/1  datasets raw                                   features/2
    embed/1     produced_by features/1; datasets train (sha256:aa), eval (VALIDATION);
                source git/embed @ abc; dependencies torch
    ranker/1    produced_by embed/1; datasets train
    ranker/2    produced_by embed/1, features/2
    report/1    produced_by ranker/1
    """
    for model in ("features", "embed", "ranker", "report"):
        client.create_model(model)
    ready_version(client, "features", datasets=[RAW])
    ready_version(client, "features")
    ready_version(
        client,
        "embed",
        produced_by=[("features", 1)],
        datasets=[(TRAIN, "sha256:aa"), (EVAL, "", "validation")],
        source=("https://git/embed", "abc", "train.py"),
        dependencies=["torch"],
    )
    ready_version(client, "ranker", produced_by=[v("embed", 1)], datasets=[TRAIN])
    ready_version(client, "ranker", produced_by=[v("embed", 1), v("features", 2)])
    ready_version(client, "report", produced_by=[v("ranker", 1)])
    return client


@dataclass(frozen=True)
class Graph:
    """A GetLineage answer, reduced to what the tests compare."""

    depths: dict[str, int]  # node id -> depth
    kinds: dict[str, str]  # node id -> kind name (VERSION, MODEL, ...)
    edges: set[tuple[str, str, str]]  # (from, kind, to)
    truncated: bool
    response: mr.GetLineageResponse

    def of_kind(self, kind: str) -> dict[str, int]:
        return {n: d for n, d in self.depths.items() if self.kinds[n] == kind}

    def edges_of(self, kind: str) -> set[tuple[str, str]]:
        return {(a, b) for a, k, b in self.edges if k == kind}


def graph(response: mr.GetLineageResponse) -> Graph:
    kinds = {n.id: lpb.LineageNodeKind.Name(n.kind).removeprefix("LINEAGE_NODE_KIND_")
             for n in response.nodes}  # fmt: skip
    assert len(kinds) == len(response.nodes), "node ids repeat"
    edges = {
        (
            e.from_node,
            lpb.LineageEdgeKind.Name(e.kind).removeprefix("LINEAGE_EDGE_KIND_"),
            e.to_node,
        )
        for e in response.edges
    }
    assert len(edges) == len(response.edges), "edges repeat"
    for a, _, b in edges:
        assert a in kinds and b in kinds, (a, b)
    return Graph({n.id: n.depth for n in response.nodes}, kinds, edges, response.truncated,
                 response)  # fmt: skip


def test_downstream_is_what_consumes_a_version(world: RegistryClient) -> None:
    g = graph(world.get_lineage("features", 1, direction="downstream"))
    assert g.of_kind("VERSION") == {
        v("features", 1): 0,
        v("embed", 1): 1,
        v("ranker", 1): 2,
        v("ranker", 2): 2,
        v("report", 1): 3,
    }
    assert g.edges_of("PRODUCED_BY") == {
        (v("embed", 1), v("features", 1)),
        (v("ranker", 1), v("embed", 1)),
        (v("ranker", 2), v("embed", 1)),
        (v("report", 1), v("ranker", 1)),
    }
    assert g.of_kind("MODEL") == {
        "models/features": 0, "models/embed": 1, "models/ranker": 2, "models/report": 3,
    }  # fmt: skip
    assert (v("ranker", 2), "VERSION_OF", "models/ranker") in g.edges
    assert g.of_kind("DATASET") == {} and g.of_kind("SOURCE") == {}
    assert not g.truncated
    first = g.response.nodes[0]
    assert first.id == v("features", 1) and first.model_version.name == v("features", 1)
    assert first.model_version.datasets[0].uri == RAW  # nodes carry the whole version


def test_upstream_is_what_a_version_came_from(world: RegistryClient) -> None:
    g = graph(world.get_lineage(v("report", 1), direction="UPSTREAM"))
    assert g.of_kind("VERSION") == {
        v("report", 1): 0,
        v("ranker", 1): 1,
        v("embed", 1): 2,
        v("features", 1): 3,
    }
    assert g.of_kind("DATASET") == {f"datasets/{TRAIN}": 2, f"datasets/{EVAL}": 3,
                                    f"datasets/{RAW}": 4}  # fmt: skip
    assert g.of_kind("SOURCE") == {"sources/https://git/embed@abc": 3}
    assert g.edges_of("TRAINED_ON") == {
        (v("ranker", 1), f"datasets/{TRAIN}"),
        (v("embed", 1), f"datasets/{TRAIN}"),
        (v("embed", 1), f"datasets/{EVAL}"),
        (v("features", 1), f"datasets/{RAW}"),
    }
    assert g.edges_of("BUILT_FROM") == {(v("embed", 1), "sources/https://git/embed@abc")}
    roles = {(e.from_node, e.to_node): (e.dataset.digest, e.dataset.role)
             for e in g.response.edges if e.kind == lpb.LINEAGE_EDGE_KIND_TRAINED_ON}  # fmt: skip
    assert roles[(v("embed", 1), f"datasets/{TRAIN}")] == ("sha256:aa", res.DATASET_ROLE_TRAINING)
    assert roles[(v("embed", 1), f"datasets/{EVAL}")] == ("", res.DATASET_ROLE_VALIDATION)
    source = next(n for n in g.response.nodes if n.kind == lpb.LINEAGE_NODE_KIND_SOURCE)
    assert (source.source.repository, source.source.commit) == ("https://git/embed", "abc")
    assert v("ranker", 2) not in g.depths  # a sibling, not an ancestor


def test_both_directions_and_alias_start(world: RegistryClient) -> None:
    world.set_alias("embed", "prod", 1)
    g = graph(world.get_lineage("embed", "prod"))  # direction unset: both
    assert g.of_kind("VERSION") == {
        v("embed", 1): 0,
        v("features", 1): 1,
        v("ranker", 1): 1,
        v("ranker", 2): 1,
        v("report", 1): 2,
    }
    assert v("features", 2) not in g.depths  # upstream of a downstream node: not included
    depths = [n.depth for n in g.response.nodes]
    assert g.response.nodes[0].id == v("embed", 1) and depths == sorted(depths)
    assert g.of_kind("DATASET") == {f"datasets/{TRAIN}": 1, f"datasets/{EVAL}": 1,
                                    f"datasets/{RAW}": 2}  # fmt: skip
    assert graph(world.get_lineage("embed", "latest", direction="both")).depths == g.depths


def test_depth_limit(world: RegistryClient) -> None:
    one = graph(world.get_lineage("features", 1, direction="downstream", max_depth=1))
    assert one.of_kind("VERSION") == {v("features", 1): 0, v("embed", 1): 1}
    two = graph(world.get_lineage("features", 1, direction="downstream", max_depth=2))
    assert set(two.of_kind("VERSION")) == {
        v("features", 1), v("embed", 1), v("ranker", 1), v("ranker", 2),
    }  # fmt: skip
    up = graph(world.get_lineage("report", 1, direction="upstream", max_depth=2))
    assert set(up.of_kind("VERSION")) == {v("report", 1), v("ranker", 1), v("embed", 1)}
    assert up.of_kind("DATASET") == {f"datasets/{TRAIN}": 2}  # embed/1's are 3 edges away
    deepest = graph(world.get_lineage("features", 1, max_depth=lineage_rules.MAX_LINEAGE_DEPTH))
    assert deepest.of_kind("VERSION") == graph(world.get_lineage("features", 1)).of_kind("VERSION")
    for bad in (-1, lineage_rules.MAX_LINEAGE_DEPTH + 1):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="max_depth", case=bad):
            world.get_lineage("features", 1, max_depth=bad)


def test_dataset_start_finds_the_versions_trained_on_it(world: RegistryClient) -> None:
    g = graph(world.get_lineage(dataset_uri=TRAIN, direction="downstream", max_depth=1))
    assert g.response.nodes[0].id == f"datasets/{TRAIN}"
    assert g.response.nodes[0].dataset_uri == TRAIN
    assert g.of_kind("VERSION") == {v("embed", 1): 1, v("ranker", 1): 1}
    assert g.edges_of("TRAINED_ON") == {
        (v("embed", 1), f"datasets/{TRAIN}"),
        (v("ranker", 1), f"datasets/{TRAIN}"),
    }
    further = graph(world.get_lineage(dataset_uri=TRAIN))
    assert further.of_kind("VERSION") == {
        v("embed", 1): 1, v("ranker", 1): 1, v("ranker", 2): 2, v("report", 1): 2,
    }  # fmt: skip
    assert graph(world.get_lineage(dataset_uri=TRAIN, direction="upstream")).depths == {
        f"datasets/{TRAIN}": 0
    }
    unknown = graph(world.get_lineage(dataset_uri="gs://nobody/uses/this"))
    assert unknown.depths == {"datasets/gs://nobody/uses/this": 0} and not unknown.edges


def test_lineage_filters_through_the_client(world: RegistryClient) -> None:
    def names(text: str) -> list[str]:
        return [x.name for x in world.list_versions("-", filter=text)]

    assert names(f'datasets.uri = "{TRAIN}"') == [v("embed", 1), v("ranker", 1)]
    assert names(f'produced_by = "{v("embed", 1)}"') == [v("ranker", 1), v("ranker", 2)]
    assert names('produced_by = "models/features/*"') == [v("embed", 1), v("ranker", 2)]
    assert names('datasets.digest = "sha256:aa"') == [v("embed", 1)]
    assert names('dependencies.name = "torch" AND source.commit = "abc"') == [v("embed", 1)]
    assert names('source.repository = "https://git/embed"') == [v("embed", 1)]
    assert names("NOT datasets.uri:*") == [v("features", 2), v("ranker", 2), v("report", 1)]
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter"):
        names("datasets.role = TRAINING")
    with expect_error(InvalidArgumentError, "INVALID_ORDER_BY", field="order_by"):
        list(world.list_versions("-", order_by="produced_by"))


def test_cycles_end(client: RegistryClient) -> None:
    client.create_model("loop")
    client.create_version("loop")
    client.create_version("loop", produced_by=[v("loop", 1)])
    client.update_version(
        res.ModelVersion(name=v("loop", 1), produced_by=[v("loop", 2), v("loop", 1)]),
        update_mask=["produced_by"],
    )
    for direction in ("upstream", "downstream", "both"):
        g = graph(client.get_lineage("loop", 1, direction=direction))
        assert g.of_kind("VERSION") == {v("loop", 1): 0, v("loop", 2): 1}, direction
        assert g.edges_of("PRODUCED_BY") <= {
            (v("loop", 1), v("loop", 2)),
            (v("loop", 2), v("loop", 1)),
            (v("loop", 1), v("loop", 1)),
        }
        assert (v("loop", 1), v("loop", 1)) in g.edges_of("PRODUCED_BY")  # a self-loop is kept


def test_deleted_versions_are_left_out_unless_asked(world: RegistryClient) -> None:
    world.delete_version("ranker", 1, force=True)
    g = graph(world.get_lineage("embed", 1, direction="downstream"))
    assert set(g.of_kind("VERSION")) == {v("embed", 1), v("ranker", 2)}  # report/1 hung off it
    shown = graph(world.get_lineage("embed", 1, direction="downstream", show_deleted=True))
    assert set(shown.of_kind("VERSION")) == {
        v("embed", 1), v("ranker", 1), v("ranker", 2), v("report", 1),
    }  # fmt: skip
    up = graph(world.get_lineage("report", 1, direction="upstream"))
    assert set(up.of_kind("VERSION")) == {v("report", 1)}
    # The start is shown even when it is deleted (as GetModelVersion shows it).
    start = graph(world.get_lineage("ranker", 1, direction="upstream", max_depth=1))
    assert set(start.of_kind("VERSION")) == {v("ranker", 1), v("embed", 1)}
    assert start.response.nodes[0].model_version.HasField("delete_time")
    assert graph(world.get_lineage(dataset_uri=TRAIN, max_depth=1)).of_kind("VERSION") == {
        v("embed", 1): 1
    }


def test_big_graphs_are_truncated(world: RegistryClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineage_rules, "MAX_LINEAGE_VERSIONS", 3)
    g = graph(world.get_lineage("features", 1, direction="downstream"))
    assert g.truncated
    assert len(g.of_kind("VERSION")) == 3
    up = graph(world.get_lineage("report", 1, direction="upstream"))
    assert up.truncated and len(up.of_kind("VERSION")) == 3
    assert not graph(world.get_lineage("features", 1, max_depth=1)).truncated


def test_bad_lineage_requests(world: RegistryClient) -> None:
    with unchanged(world):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            call(world, "GetLineage", mr.GetLineageRequest())
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            call(world, "GetLineage", mr.GetLineageRequest(name=v("embed", 1), dataset_uri=TRAIN))
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="direction"):
            call(world, "GetLineage", mr.GetLineageRequest(name=v("embed", 1), direction=9))
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="dataset_uri"):
            call(world, "GetLineage", mr.GetLineageRequest(dataset_uri="x\x00y"))
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            call(world, "GetLineage", mr.GetLineageRequest(name="models/embed"))
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            world.get_lineage("embed", 9)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            world.get_lineage("nope", 1)
    with pytest.raises(ValueError, match="unknown direction"):
        world.get_lineage("embed", 1, direction="sideways")


# -- deletes that would orphan lineage ---------------------------------------------------------


def test_deleting_a_version_others_were_produced_by_is_refused(world: RegistryClient) -> None:
    with (
        unchanged(world),
        expect_error(
            FailedPreconditionError, "VERSION_HAS_DEPENDENTS", message=v("ranker", 2)
        ) as caught,
    ):
        world.delete_version("embed", 1)
    assert caught.value.metadata == {
        "dependents": f"{v('ranker', 1)},{v('ranker', 2)}",
        "more_dependents": "false",
    }
    gone = world.delete_version("embed", 1, force=True)
    assert gone.HasField("delete_time")
    world.undelete_version("embed", 1)
    # Dependents that are deleted themselves do not hold a version back.
    world.delete_version("report", 1)
    world.delete_version("ranker", 1)  # report/1, its only dependent, is deleted
    assert world.get_version("ranker", 1).HasField("delete_time")
    # A version that names itself is not its own dependent.
    world.create_version("report", produced_by=[v("ranker", 2)])
    world.update_version(
        res.ModelVersion(name=v("report", 2), produced_by=[v("report", 2)]),
        update_mask=["produced_by"],
    )
    world.delete_version("report", 2)


def test_dependents_are_listed_up_to_a_bound(client: RegistryClient) -> None:
    client.create_model("base")
    ready_version(client, "base")
    client.create_model("users")
    for _ in range(lineage_rules.MAX_LISTED_DEPENDENTS + 2):
        client.create_version("users", produced_by=[v("base", 1)])
    with expect_error(FailedPreconditionError, "VERSION_HAS_DEPENDENTS", message="and more") as c:
        client.delete_version("base", 1)
    listed = c.value.metadata["dependents"].split(",")
    assert listed == [v("users", n) for n in range(1, lineage_rules.MAX_LISTED_DEPENDENTS + 1)]
    assert c.value.metadata["more_dependents"] == "true"


def test_deleting_a_model_others_were_produced_by_is_refused(world: RegistryClient) -> None:
    with (
        unchanged(world),
        expect_error(
            FailedPreconditionError, "MODEL_HAS_DEPENDENTS", message=v("embed", 1)
        ) as caught,
    ):
        world.delete_model("features")
    assert caught.value.metadata["dependents"] == f"{v('embed', 1)},{v('ranker', 2)}"
    # Lineage inside the model does not count: ranker/2 is not its own model's dependent.
    world.create_model("chain")
    ready_version(world, "chain")
    ready_version(world, "chain", produced_by=[v("chain", 1)])
    with unchanged(world), expect_error(FailedPreconditionError, "MODEL_HAS_VERSIONS"):
        world.delete_model("chain")
    world.delete_model("chain", force=True)
    deleted = world.delete_model("features", force=True)
    assert deleted.HasField("delete_time")
    assert world.get_version("features", 1).HasField("delete_time")
    assert world.get_version("embed", 1).produced_by == [v("features", 1)]  # the record stays
