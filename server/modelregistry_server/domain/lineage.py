"""Lineage graphs: what a version came from, what was made from it, who used a dataset.

A graph is grown breadth-first from one start (a version, or a dataset URI) along the recorded
lineage, one store query per step and direction, and is bounded three ways: ``max_depth`` edges
from the start, :data:`MAX_LINEAGE_VERSIONS` version nodes (then ``truncated``), and a visited
set, so cycles (a DRAFT version may be updated to name a later one) end. Edges always point
from a version to what it came from (``PRODUCED_BY``, ``TRAINED_ON``, ``BUILT_FROM``) or
belongs to (``VERSION_OF``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from . import names
from .access import Authorizer
from .entities import DatasetRef, ModelVersion, SourceCode
from .errors import FailedPrecondition, InvalidArgument, Reason
from .identity import Caller
from .ports import LineageIndex
from .validation import check_text

DEFAULT_LINEAGE_DEPTH = 5
MAX_LINEAGE_DEPTH = 20
MAX_LINEAGE_VERSIONS = 1000
MAX_DATASET_URI = 2000
MAX_LISTED_DEPENDENTS = 10


class LineageDirection(StrEnum):
    """Which way a graph grows from its start."""

    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"


class NodeKind(StrEnum):
    """What a node stands for."""

    MODEL = "MODEL"
    VERSION = "VERSION"
    DATASET = "DATASET"
    SOURCE = "SOURCE"


class EdgeKind(StrEnum):
    """How a version relates to the node an edge points at."""

    PRODUCED_BY = "PRODUCED_BY"
    TRAINED_ON = "TRAINED_ON"
    BUILT_FROM = "BUILT_FROM"
    VERSION_OF = "VERSION_OF"


@dataclass(frozen=True)
class LineageNode:
    """A model, version, dataset or source commit; ``depth`` is its distance from the start."""

    id: str
    kind: NodeKind
    depth: int
    version: ModelVersion | None = None
    dataset_uri: str = ""
    source: SourceCode | None = None


@dataclass(frozen=True)
class LineageEdge:
    """``from_node`` (always a version) relates to ``to_node`` as ``kind`` says."""

    kind: EdgeKind
    from_node: str
    to_node: str
    dataset: DatasetRef | None = None  # TRAINED_ON: the version's reference to the dataset


@dataclass
class LineageGraph:
    """Nodes (start first, then by depth), edges, and whether the version cap cut it short."""

    nodes: list[LineageNode] = field(default_factory=list)
    edges: list[LineageEdge] = field(default_factory=list)
    truncated: bool = False


def dataset_node_id(uri: str) -> str:
    """The id of a dataset's node."""
    return f"datasets/{uri}"


def source_node_id(source: SourceCode) -> str:
    """The id of a source commit's node."""
    return f"sources/{source.repository}@{source.commit}"


def _version_id(version: ModelVersion) -> str:
    return names.version_name(version.model_id, version.number)


class _Builder:
    """Collects nodes and edges once each and counts version nodes against the cap."""

    def __init__(self) -> None:
        self.graph = LineageGraph()
        self.versions: dict[str, ModelVersion] = {}
        self._nodes: set[str] = set()
        self._edges: set[tuple[EdgeKind, str, str]] = set()

    @property
    def room(self) -> int:
        return MAX_LINEAGE_VERSIONS - len(self.versions)

    def add_version(self, version: ModelVersion, depth: int) -> bool:
        """True if the version is new to the graph (and fits under the cap)."""
        node_id = _version_id(version)
        if node_id in self.versions:
            return False
        if self.room <= 0:
            self.graph.truncated = True
            return False
        self.versions[node_id] = version
        self._add(LineageNode(node_id, NodeKind.VERSION, depth, version=version))
        return True

    def add_dataset(self, version: ModelVersion, ref: DatasetRef, depth: int) -> None:
        node_id = dataset_node_id(ref.uri)
        self._add(LineageNode(node_id, NodeKind.DATASET, depth, dataset_uri=ref.uri))
        self.add_edge(EdgeKind.TRAINED_ON, _version_id(version), node_id, ref)

    def add_source(self, version: ModelVersion, depth: int) -> None:
        source = version.source
        if source is None or not (source.repository or source.commit):
            return
        node_id = source_node_id(source)
        commit = SourceCode(repository=source.repository, commit=source.commit)
        self._add(LineageNode(node_id, NodeKind.SOURCE, depth, source=commit))
        self.add_edge(EdgeKind.BUILT_FROM, _version_id(version), node_id)

    def add_edge(
        self, kind: EdgeKind, from_node: str, to_node: str, dataset: DatasetRef | None = None
    ) -> None:
        key = (kind, from_node, to_node)
        if key not in self._edges:
            self._edges.add(key)
            self.graph.edges.append(LineageEdge(kind, from_node, to_node, dataset))

    def add_models(self) -> None:
        """A model node per model with versions in the graph, VERSION_OF edges, and the nodes
        put in order of depth."""
        depths: dict[str, int] = {}
        for node in self.graph.nodes:
            if node.version is not None:
                model = names.model_name(node.version.model_id)
                depths[model] = min(depths.get(model, node.depth), node.depth)
                self.add_edge(EdgeKind.VERSION_OF, node.id, model)
        for model, depth in depths.items():
            self._add(LineageNode(model, NodeKind.MODEL, depth))
        self.graph.nodes.sort(key=lambda n: n.depth)  # stable: the start stays first

    def _add(self, node: LineageNode) -> None:
        if node.id not in self._nodes:
            self._nodes.add(node.id)
            self.graph.nodes.append(node)


Resolver = Callable[[Caller, names.VersionRef], ModelVersion]


class Lineage:
    """The GetLineage use case over the :class:`~.ports.LineageIndex` port."""

    def __init__(self, index: LineageIndex, resolve: Resolver, authorizer: Authorizer) -> None:
        self._index = index
        self._resolve = resolve
        self._auth = authorizer

    def _visible(self, caller: Caller, versions: Sequence[ModelVersion]) -> set[str]:
        """The model ids among ``versions`` the caller may read: versions of other models are
        left out of its graphs, as if they did not exist."""
        return self._auth.visible_models(caller, {v.model_id for v in versions})

    def get_lineage(
        self,
        caller: Caller,
        *,
        name: str = "",
        dataset_uri: str = "",
        direction: LineageDirection = LineageDirection.BOTH,
        max_depth: int = 0,
        show_deleted: bool = False,
    ) -> LineageGraph:
        """The graph around the version ``name`` (number, ``latest`` or alias; included even if
        soft-deleted) or the dataset ``dataset_uri``: exactly one must be set."""
        if bool(name) == bool(dataset_uri):
            raise InvalidArgument.field("name", "set exactly one of name and dataset_uri")
        depth = check_depth(max_depth)
        if dataset_uri:
            check_text(dataset_uri, "dataset_uri", MAX_DATASET_URI)
            return self._dataset_graph(caller, dataset_uri, direction, depth, show_deleted)
        start = self._resolve(caller, names.parse_version_name(name))
        return self._version_graph(caller, start, direction, depth, show_deleted)

    def _version_graph(
        self,
        caller: Caller,
        start: ModelVersion,
        direction: LineageDirection,
        depth: int,
        show_deleted: bool,
    ) -> LineageGraph:
        build = _Builder()
        build.add_version(start, 0)
        if direction is not LineageDirection.DOWNSTREAM:
            self._upstream(caller, build, start, depth, show_deleted)
        if direction is not LineageDirection.UPSTREAM:
            self._downstream(caller, build, [start], 1, depth, show_deleted)
        build.add_models()
        return build.graph

    def _dataset_graph(
        self,
        caller: Caller,
        uri: str,
        direction: LineageDirection,
        depth: int,
        show_deleted: bool,
    ) -> LineageGraph:
        """The dataset's node and, downstream, the versions referencing it and what they fed."""
        build = _Builder()
        node_id = dataset_node_id(uri)
        build.graph.nodes.append(LineageNode(node_id, NodeKind.DATASET, 0, dataset_uri=uri))
        if direction is not LineageDirection.UPSTREAM:
            users = self._index.dataset_users(
                caller.tenant, uri, include_deleted=show_deleted, limit=build.room + 1
            )
            fresh = []
            visible = self._visible(caller, users)
            for version in users:
                if version.model_id not in visible:
                    continue
                if build.add_version(version, 1):
                    fresh.append(version)
                    for ref in version.datasets:
                        if ref.uri == uri:
                            build.add_edge(EdgeKind.TRAINED_ON, _version_id(version), node_id, ref)
            self._downstream(caller, build, fresh, 2, depth, show_deleted)
        build.add_models()
        return build.graph

    def _upstream(
        self,
        caller: Caller,
        build: _Builder,
        start: ModelVersion,
        max_depth: int,
        show_deleted: bool,
    ) -> None:
        frontier = [start]
        for depth in range(1, max_depth + 1):
            if not frontier:
                return
            wanted: dict[str, tuple[str, int]] = {}
            for version in frontier:
                for ref in version.datasets:
                    build.add_dataset(version, ref, depth)
                build.add_source(version, depth)
                for name in version.produced_by:
                    parsed = _parse_stored(name)
                    if parsed is not None and name not in build.versions:
                        wanted[name] = parsed
            if len(wanted) > build.room:
                build.graph.truncated = True
                wanted = dict(list(wanted.items())[: build.room])
            named = self._index.versions_named(caller.tenant, list(wanted.values()))
            visible = self._visible(caller, named)
            found = {
                _version_id(v): v
                for v in named
                if (show_deleted or not v.is_deleted) and v.model_id in visible
            }
            next_frontier = []
            for version in frontier:
                for name in version.produced_by:
                    upstream = found.get(name) or build.versions.get(name)
                    if upstream is None:
                        continue  # purged, or deleted and not asked for
                    if build.add_version(upstream, depth):
                        next_frontier.append(upstream)
                    if name in build.versions:
                        build.add_edge(EdgeKind.PRODUCED_BY, _version_id(version), name)
            frontier = next_frontier

    def _downstream(
        self,
        caller: Caller,
        build: _Builder,
        frontier: list[ModelVersion],
        first_depth: int,
        max_depth: int,
        show_deleted: bool,
    ) -> None:
        for depth in range(first_depth, max_depth + 1):
            if not frontier:
                return
            limit = build.room + 1
            pairs = self._index.consumers(
                caller.tenant,
                [_version_id(v) for v in frontier],
                include_deleted=show_deleted,
                limit=limit,
            )
            if len(pairs) >= limit:
                build.graph.truncated = True
            next_frontier = []
            visible = self._visible(caller, [consumer for _, consumer in pairs])
            for upstream, consumer in pairs:
                if consumer.model_id not in visible:
                    continue
                if build.add_version(consumer, depth):
                    next_frontier.append(consumer)
                if _version_id(consumer) in build.versions:
                    build.add_edge(EdgeKind.PRODUCED_BY, _version_id(consumer), upstream)
            frontier = next_frontier


def refuse_if_depended_on(
    index: LineageIndex, caller: Caller, model_id: str, number: int | None
) -> None:
    """FAILED_PRECONDITION if live versions outside the target (version ``number`` of the
    model, or the whole model if None) were produced by it.

    The error names up to :data:`MAX_LISTED_DEPENDENTS` of them, in its message and in the
    metadata ``dependents`` (comma-separated); ``more_dependents`` is ``true`` if there are
    more.
    """
    found = index.dependents(caller.tenant, model_id, number, MAX_LISTED_DEPENDENTS + 1)
    if not found:
        return
    shown = [names.version_name(m, n) for m, n in found[:MAX_LISTED_DEPENDENTS]]
    more = len(found) > MAX_LISTED_DEPENDENTS
    listed = ", ".join(shown) + (" and more" if more else "")
    metadata = {"dependents": ",".join(shown), "more_dependents": str(more).lower()}
    if number is None:
        raise FailedPrecondition(
            f"versions of model {model_id!r} are in the produced_by of versions of other "
            f"models: {listed}; pass force to delete it anyway",
            reason=Reason.MODEL_HAS_DEPENDENTS,
            metadata=metadata,
        )
    raise FailedPrecondition(
        f"version {number} of model {model_id!r} is in the produced_by of {listed}; "
        "pass force to delete it anyway",
        reason=Reason.VERSION_HAS_DEPENDENTS,
        metadata=metadata,
    )


def check_depth(max_depth: int) -> int:
    """0 means :data:`DEFAULT_LINEAGE_DEPTH`; negative or above the maximum is an error."""
    if max_depth < 0:
        raise InvalidArgument.field("max_depth", "must not be negative")
    if max_depth > MAX_LINEAGE_DEPTH:
        raise InvalidArgument.field("max_depth", f"must be at most {MAX_LINEAGE_DEPTH}")
    return max_depth or DEFAULT_LINEAGE_DEPTH


def _parse_stored(name: str) -> tuple[str, int] | None:
    """``(model_id, number)`` of a stored ``produced_by`` entry (always a numbered name)."""
    try:
        ref = names.parse_version_name(name, numbered=True)
    except InvalidArgument:
        return None
    return None if ref.number is None else (ref.model_id, ref.number)
