"""``/models/{model}/versions/{version}`` (a number, ``latest`` or an alias): every piece of
metadata, the files with a download link each, the stage history, and the lineage upstream
and downstream as nested links; and the download itself, under the version's URL, streaming
the verified bytes."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from ..domain import names
from ..domain.entities import FileRecord, ModelVersion, StageTransition
from ..domain.errors import DomainError
from ..domain.identity import Caller
from ..domain.lineage import EdgeKind, Lineage, LineageDirection, LineageGraph, NodeKind
from ..domain.payloads import Payloads
from ..domain.registry import Registry, utc_now
from .model_pages import model_id_of
from .pages import Page, View, payload_rpc, registry_rpc

log = logging.getLogger(__name__)
MAX_FILES_SHOWN = 1000
MAX_TRANSITIONS_SHOWN = 200
DOWNLOAD_CHUNK_BYTES = 256 * 1024


@dataclass
class LineageItem:
    """One node of a lineage tree as the page shows it, with what hangs below it."""

    kind: str  # VERSION, DATASET, SOURCE
    label: str
    href: str = ""
    note: str = ""
    deleted: bool = False
    children: list[LineageItem] = field(default_factory=list)
    seen: bool = False  # already shown higher up (a shared ancestor or a cycle)


@dataclass(frozen=True)
class VersionDetail:
    version: ModelVersion
    files: list[FileRecord]
    more_files: bool
    transitions: list[StageTransition]
    upstream: list[LineageItem]
    downstream: list[LineageItem]
    truncated: bool


def version_ref(view: View) -> names.VersionRef:
    """The version the path names (INVALID_ARGUMENT for a malformed one)."""
    model_id = model_id_of(view)
    segment = str(view.request.path_params["version"])
    return names.parse_version_name(f"models/{model_id}/versions/{segment}", "version")


def _item(graph: LineageGraph, node_id: str) -> LineageItem:
    node = next(n for n in graph.nodes if n.id == node_id)
    if node.kind is NodeKind.VERSION and node.version is not None:
        v = node.version
        return LineageItem(
            "VERSION",
            f"{v.model_id} v{v.number}",
            f"/models/{v.model_id}/versions/{v.number}",
            v.stage.value,
            v.is_deleted,
        )
    if node.kind is NodeKind.DATASET:
        return LineageItem("DATASET", node.dataset_uri)
    if node.kind is NodeKind.SOURCE and node.source is not None:
        s = node.source
        return LineageItem("SOURCE", f"{s.repository}@{s.commit}", note=s.path)
    return LineageItem(node.kind.value, node.id)


def lineage_tree(graph: LineageGraph, start: str, upstream: bool) -> list[LineageItem]:
    """The nodes reachable from ``start`` as nested items: upstream, what each version came
    from (versions, datasets, sources); downstream, the versions made from each."""
    shown: set[str] = {start}

    def children(node_id: str) -> list[LineageItem]:
        items = []
        for edge in graph.edges:
            if edge.kind is EdgeKind.VERSION_OF:
                continue
            if upstream and edge.from_node == node_id:
                target = edge.to_node
            elif not upstream and edge.kind is EdgeKind.PRODUCED_BY and edge.to_node == node_id:
                target = edge.from_node
            else:
                continue
            item = _item(graph, target)
            if edge.dataset is not None:
                role = edge.dataset.role.value.lower()
                item.note = f"{role}, {edge.dataset.digest}" if edge.dataset.digest else role
            if target in shown:
                item.seen = True
            else:
                shown.add(target)
                item.children = children(target)
            items.append(item)
        return items

    return children(start)


def _detail(
    registry: Registry, payloads: Payloads, lineage: Lineage, caller: Caller, ref: names.VersionRef
) -> VersionDetail:
    version = registry.get_version(caller, ref)
    numbered = names.VersionRef(version.model_id, number=version.number)
    files, next_files = payloads.list_files(
        caller, names.FilesParent(version=numbered), page_size=MAX_FILES_SHOWN
    )
    transitions, _ = registry.list_transitions(caller, numbered, page_size=MAX_TRANSITIONS_SHOWN)
    name = names.version_name(version.model_id, version.number)
    # One walk both ways (ancestors and descendants, not their other relatives).
    graph = lineage.get_lineage(caller, name=name, direction=LineageDirection.BOTH)
    return VersionDetail(
        version,
        files,
        bool(next_files),
        transitions,
        lineage_tree(graph, name, upstream=True),
        lineage_tree(graph, name, upstream=False),
        graph.truncated,
    )


async def version_page(view: View) -> Response:
    ref = version_ref(view)
    services = view.services
    detail = await view.run(
        _detail, services.registry, services.payloads, services.lineage, view.caller, ref
    )
    v = detail.version
    return view.render(
        "version.html",
        {
            "detail": detail,
            "v": v,
            "asked_as": ref.alias or "",
            "expired": v.is_expired(utc_now()),
            "base": f"/models/{v.model_id}/versions/{v.number}",
            "produced_by": [_produced_by_link(p) for p in v.produced_by],
        },
    )


def _produced_by_link(name: str) -> tuple[str, str]:
    try:
        ref = names.parse_version_name(name, numbered=True)
    except Exception:
        return name, ""
    return name, f"/models/{ref.model_id}/versions/{ref.number}"


def content_disposition(file_id: str) -> str:
    """``attachment`` with the file id's last segment as the name (ASCII and RFC 5987)."""
    base = file_id.rsplit("/", 1)[-1]
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


async def download(view: View) -> Response:
    ref = version_ref(view)
    file_id = names.check_file_id(str(view.request.path_params["file"]), "file")
    record, reader = await view.run(
        view.services.payloads.open_download, view.caller, names.FileRef(ref, file_id), 0, 0
    )

    try:  # the first block is read and checked before the status is sent
        first = await view.run_unscoped(reader.read, DOWNLOAD_CHUNK_BYTES)
    except BaseException:
        await view.run_unscoped(reader.close)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            data = first
            while data:
                yield data
                data = await view.run_unscoped(reader.read, DOWNLOAD_CHUNK_BYTES)
        except DomainError as exc:
            # The status is sent: cutting the connection short is how the client learns.
            log.warning("web download of %s ended early: %s", record.file_id, exc.message)
            raise
        finally:
            await view.run_unscoped(reader.close)

    digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",  # never the stored type: no page from a file
        headers={
            "content-length": str(record.size),
            "content-disposition": content_disposition(file_id),
            "repr-digest": f"sha-256=:{digest}:",
            "etag": f'"{record.sha256}"',
        },
    )


PAGES = (
    Page(
        "/models/{model}/versions/{version}",
        version_page,
        registry_rpc("GetModelVersion"),
        ("GET",),
        "version",
    ),
    Page(
        "/models/{model}/versions/{version}/files/{file:path}",
        download,
        payload_rpc("DownloadFile"),
        ("GET",),
        "download",
    ),
)
