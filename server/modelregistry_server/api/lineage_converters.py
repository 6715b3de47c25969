"""Lineage graphs and directions: proto ↔ domain."""

from __future__ import annotations

from datetime import datetime

from modelregistry.v1 import lineage_pb2 as lpb
from modelregistry.v1 import model_registry_pb2 as rpc
from modelregistry.v1 import resources_pb2 as pb

from ..domain.errors import InvalidArgument
from ..domain.lineage import EdgeKind, LineageDirection, LineageGraph, LineageNode, NodeKind
from .converters import dataset_to_proto, version_to_proto

_DIRECTION_FROM_PB = {
    lpb.LINEAGE_DIRECTION_UNSPECIFIED: LineageDirection.BOTH,
    lpb.LINEAGE_DIRECTION_UPSTREAM: LineageDirection.UPSTREAM,
    lpb.LINEAGE_DIRECTION_DOWNSTREAM: LineageDirection.DOWNSTREAM,
    lpb.LINEAGE_DIRECTION_BOTH: LineageDirection.BOTH,
}
_NODE_TO_PB = {
    NodeKind.MODEL: lpb.LINEAGE_NODE_KIND_MODEL,
    NodeKind.VERSION: lpb.LINEAGE_NODE_KIND_VERSION,
    NodeKind.DATASET: lpb.LINEAGE_NODE_KIND_DATASET,
    NodeKind.SOURCE: lpb.LINEAGE_NODE_KIND_SOURCE,
}
_EDGE_TO_PB = {
    EdgeKind.PRODUCED_BY: lpb.LINEAGE_EDGE_KIND_PRODUCED_BY,
    EdgeKind.TRAINED_ON: lpb.LINEAGE_EDGE_KIND_TRAINED_ON,
    EdgeKind.BUILT_FROM: lpb.LINEAGE_EDGE_KIND_BUILT_FROM,
    EdgeKind.VERSION_OF: lpb.LINEAGE_EDGE_KIND_VERSION_OF,
}


def direction_from_proto(value: int, field: str) -> LineageDirection:
    """A requested direction (unset means both); unknown numbers are INVALID_ARGUMENT."""
    direction: LineageDirection | None = _DIRECTION_FROM_PB.get(value)  # type: ignore[call-overload]  # wire ints
    if direction is None:
        raise InvalidArgument.field(field, "must be UPSTREAM, DOWNSTREAM or BOTH")
    return direction


def graph_to_proto(graph: LineageGraph, now: datetime) -> rpc.GetLineageResponse:
    """Domain graph → GetLineageResponse (``expired`` of versions computed at ``now``)."""
    return rpc.GetLineageResponse(
        nodes=[_node_to_proto(n, now) for n in graph.nodes],
        edges=[
            lpb.LineageEdge(
                kind=_EDGE_TO_PB[e.kind],
                from_node=e.from_node,
                to_node=e.to_node,
                dataset=None if e.dataset is None else dataset_to_proto(e.dataset),
            )
            for e in graph.edges
        ],
        truncated=graph.truncated,
    )


def _node_to_proto(node: LineageNode, now: datetime) -> lpb.LineageNode:
    msg = lpb.LineageNode(
        id=node.id, kind=_NODE_TO_PB[node.kind], depth=node.depth, dataset_uri=node.dataset_uri
    )
    if node.version is not None:
        msg.model_version.CopyFrom(version_to_proto(node.version, now))
    if node.source is not None:
        msg.source.CopyFrom(
            pb.SourceCode(repository=node.source.repository, commit=node.source.commit)
        )
    return msg
