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
from ..domain.entities import FileRecord
from ..domain.errors import Cancelled, InvalidArgument
from ..domain.identity import Caller
from ..domain.integrity import CheckedRead
from ..domain.payloads import Payloads, UploadFinish, UploadItem, UploadRequest
from . import converters as conv
from . import download_frames as frames
from .callers import caller_of

Ctx = grpc.ServicerContext


def _chunks(requests: Iterator[rpc.UploadFileRequest]) -> Iterator[UploadItem]:
    """The messages after the header: chunks as ``(offset, data)``, then the finish if the
    client sends one (nothing may follow it); a vanished client is reported as CANCELLED."""
    try:
        finished = False
        for message in requests:
            kind = message.WhichOneof("kind")
            if finished:
                raise InvalidArgument.field("finish", "must be the last message of the stream")
            if kind == "chunk":
                yield message.chunk.offset, message.chunk.data
            elif kind == "finish":
                finished = True
                yield UploadFinish(message.finish.sha256)
            else:
                raise InvalidArgument.field(
                    "chunk", "every message after the header must be a chunk or the finish"
                )
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

    # The frames are serialised DownloadFileResponse messages, which the stubs cannot type.
    def DownloadFile(  # type: ignore[override]
        self, request: rpc.DownloadFileRequest, context: Ctx
    ) -> Iterator[bytes]:
        """The messages as serialised ``DownloadFileResponse`` frames (``download_frames``):
        the serving edge passes ``bytes`` to gRPC as they are."""
        ref = names.parse_file_name(request.name)
        return _DownloadMessages(self._payloads, caller_of(context), ref, request, self._chunk)

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


# The first RAMP_BYTES of a download go out in small
# messages, then ``download_chunk_bytes``: a client that stops reading (its transport still
# takes a few MiB; grpc-python's takes 4) leaves one small message waiting on the server, not
# a big one.
FIRST_MESSAGE_BYTES = 64 * 1024
RAMP_BYTES = 8 * 1024 * 1024


def message_bytes(accepted: int, chunk: int) -> int:
    """The size of the next download message after ``accepted`` bytes (see above)."""
    return min(chunk, FIRST_MESSAGE_BYTES) if accepted < RAMP_BYTES else chunk


class _DownloadMessages(Iterator[bytes]):
    """The messages of one DownloadFile, serialised (see ``download_frames``). The file is
    opened by the first ``next`` (on a stream thread); :meth:`park` lets go of the reader's
    blocks while the client reads nothing (the serving edge calls it), and the next message
    resumes where it stopped."""

    def __init__(
        self,
        payloads: Payloads,
        caller: Caller,
        ref: names.FileRef,
        request: rpc.DownloadFileRequest,
        chunk: int,
    ) -> None:
        self._payloads = payloads
        self._caller = caller
        self._ref = ref
        self._offset = request.offset
        self._limit = request.limit
        self._chunk = chunk
        self._record: FileRecord | None = None
        self._reader: CheckedRead | None = None
        self._accepted = 0  # bytes sent
        self._sent = False
        self._done = False

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        if self._reader is None:
            self._record, self._reader = self._payloads.open_download(
                self._caller, self._ref, self._offset, self._limit
            )
        assert self._record is not None
        data = self._reader.read(message_bytes(self._accepted, self._chunk))
        if not data:
            self._done = True
            if self._sent:
                raise StopIteration
        head = b""
        if not self._sent:  # the first message (of an empty file or range too) has the file
            head = frames.file_field(conv.file_to_proto(self._record).SerializeToString())
            self._sent = True
        message = frames.frame(self._offset, data, head)
        self._offset += len(data)
        self._accepted += len(data)
        return message

    def ready(self) -> bool:
        """Whether the next message is made from bytes in memory (no I/O)."""
        return self._reader is not None and not self._done and self._reader.buffered()

    def park(self) -> bool:
        """The client has not accepted a message for a while: release the reader's blocks
        (it reopens on the next message); whether there were any."""
        return self._reader is not None and self._reader.park()

    def close(self) -> None:
        """Release the reader."""
        self._done = True
        if self._reader is not None:
            self._reader.close()
