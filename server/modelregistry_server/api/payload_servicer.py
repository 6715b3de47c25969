"""PayloadService servicer: the upload/download stream framing around the payload use cases."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
from google.protobuf import empty_pb2

from modelregistry.v1 import payload_pb2 as rpc
from modelregistry.v1 import payload_pb2_grpc as rpc_grpc
from modelregistry.v1 import resources_pb2 as pb

from ..domain import names
from ..domain.errors import Cancelled, InvalidArgument
from ..domain.payloads import Payloads, UploadRequest
from . import converters as conv
from .callers import caller_of

Ctx = grpc.ServicerContext


def _chunks(requests: Iterator[rpc.UploadFileRequest]) -> Iterator[tuple[int, bytes]]:
    """The data messages after the header as ``(offset, data)``; a vanished client is
    reported as CANCELLED."""
    try:
        for message in requests:
            if message.WhichOneof("kind") != "chunk":
                raise InvalidArgument.field(
                    "chunk", "every message after the header must be a chunk"
                )
            yield message.chunk.offset, message.chunk.data
    except grpc.RpcError:
        raise Cancelled("the client cancelled the upload or the connection dropped") from None


class _Liveness:
    """Whether an upload's caller went away.

    grpc-python may end the request iterator as if the client had finished when it actually
    cancelled (grpc/grpc#33038); the cancellation is delivered a moment later on gRPC's own
    thread. :meth:`cancelled` can wait for it: termination callbacks fire on cancellation.
    """

    def __init__(self, context: Ctx) -> None:
        self._context = context
        self._ended = threading.Event()
        if not context.add_callback(self._ended.set):
            self._ended.set()

    def cancelled(self, grace: float) -> bool:
        if grace > 0 and self._context.is_active():
            self._ended.wait(grace)
        return not self._context.is_active()


class PayloadServicer(rpc_grpc.PayloadServiceServicer):
    """The PayloadService service."""

    def __init__(self, payloads: Payloads, download_chunk_bytes: int) -> None:
        self._payloads = payloads
        self._chunk = download_chunk_bytes

    def UploadFile(
        self, request_iterator: Iterator[rpc.UploadFileRequest], context: Ctx
    ) -> pb.File:
        try:
            first = next(request_iterator)
        except StopIteration:
            raise InvalidArgument.field(
                "header", "the stream is empty; send a header first"
            ) from None
        except grpc.RpcError:
            raise Cancelled("the client cancelled the upload") from None
        if first.WhichOneof("kind") != "header":
            raise InvalidArgument.field("header", "the first message must be the header")
        header = first.header
        request = UploadRequest(
            target=names.parse_file_name(header.name, "header.name", numbered=True),
            upload_id=header.upload_id,
            write_offset=header.write_offset,
            size=header.size_bytes if header.HasField("size_bytes") else None,
            sha256=header.sha256,
            content_type=header.content_type,
        )
        record = self._payloads.upload(
            caller_of(context), request, _chunks(request_iterator), _Liveness(context).cancelled
        )
        return conv.file_to_proto(record)

    def DownloadFile(
        self, request: rpc.DownloadFileRequest, context: Ctx
    ) -> Iterator[rpc.DownloadFileResponse]:
        ref = names.parse_file_name(request.name)
        record, stream = self._payloads.open_download(
            caller_of(context), ref, request.offset, request.limit
        )
        offset = request.offset
        first = True
        for data in _rechunk(stream, self._chunk):
            message = rpc.DownloadFileResponse(offset=offset, data=data)
            if first:
                message.file.CopyFrom(conv.file_to_proto(record))
                first = False
            offset += len(data)
            yield message
        if first:  # empty file or empty range: still send the metadata
            yield rpc.DownloadFileResponse(file=conv.file_to_proto(record), offset=offset)

    def GetFile(self, request: rpc.GetFileRequest, context: Ctx) -> pb.File:
        ref = names.parse_file_name(request.name)
        return conv.file_to_proto(self._payloads.get_file(caller_of(context), ref))

    def ListFiles(self, request: rpc.ListFilesRequest, context: Ctx) -> rpc.ListFilesResponse:
        files, token = self._payloads.list_files(
            caller_of(context),
            names.parse_files_parent(request.parent, "parent"),
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
        )
        return rpc.ListFilesResponse(
            files=[conv.file_to_proto(f) for f in files], next_page_token=token
        )

    def GetUploadStatus(
        self, request: rpc.GetUploadStatusRequest, context: Ctx
    ) -> rpc.UploadStatus:
        session, record = self._payloads.upload_status(caller_of(context), request.upload_id)
        return conv.upload_to_proto(session, record)

    def ListUploads(self, request: rpc.ListUploadsRequest, context: Ctx) -> rpc.ListUploadsResponse:
        ref = names.parse_version_name(request.parent, "parent")
        sessions, token = self._payloads.list_uploads(
            caller_of(context),
            ref,
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
        )
        return rpc.ListUploadsResponse(
            uploads=[conv.upload_to_proto(s) for s in sessions], next_page_token=token
        )

    def CancelUpload(self, request: rpc.CancelUploadRequest, context: Ctx) -> empty_pb2.Empty:
        self._payloads.cancel_upload(caller_of(context), request.upload_id)
        return empty_pb2.Empty()

    def VerifyFile(self, request: rpc.VerifyFileRequest, context: Ctx) -> pb.File:
        ref = names.parse_file_name(request.name)
        verified = self._payloads.verify_file(
            caller_of(context), ref, cancelled=lambda: not context.is_active()
        )
        return conv.file_to_proto(verified)


def _rechunk(stream: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Pass blocks of at most ``size`` bytes through, splitting larger ones (no copies when
    the store already yields blocks of the right size)."""
    for block in stream:
        if len(block) <= size:
            if block:
                yield block
            continue
        view = memoryview(block)
        for start in range(0, len(block), size):
            yield bytes(view[start : start + size])
