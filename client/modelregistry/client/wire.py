"""The transfer messages in their protobuf wire form, around the data without copying it into
messages: upload chunks are framed once, download messages are parsed into their fields.

Building an ``UploadFileRequest`` per chunk copies the chunk into the message and again into
the serialised bytes, and parsing a ``DownloadFileResponse`` copies the data twice too; for
megabyte messages those copies (and allocating them) cost more than hashing. A frame is
exactly what protobuf writes (fields in number order, defaults left out); parsing accepts any
valid encoding (fields in any order, unknown fields skipped) and falls back to protobuf for
what it does not handle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res

__all__ = [
    "DownloadMessage",
    "TransferCalls",
    "parse_download",
    "serialize_upload",
    "upload_chunk",
]

_UPLOAD_CHUNK_KEY = b"\x12"  # UploadFileRequest.chunk: field 2, length-delimited
_CHUNK_OFFSET_KEY = b"\x08"  # UploadChunk.offset: field 1, varint
_CHUNK_DATA_KEY = b"\x12"  # UploadChunk.data: field 2, length-delimited
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement in ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def upload_chunk(offset: int, data: bytes) -> bytes:
    """The serialised ``UploadFileRequest{chunk: {offset, data}}`` (one copy of ``data``)."""
    inner = _CHUNK_OFFSET_KEY + _varint(offset) if offset else b""
    if data:
        inner += _CHUNK_DATA_KEY + _varint(len(data))
    return b"".join((_UPLOAD_CHUNK_KEY, _varint(len(inner) + len(data)), inner, data))


def serialize_upload(message: Any) -> bytes:
    """The request serializer of UploadFile: frames from :func:`upload_chunk` as they are,
    messages (header, finish) serialised."""
    if type(message) is bytes:
        return message
    serialized: bytes = message.SerializeToString()
    return serialized


@dataclass(frozen=True, slots=True)
class DownloadMessage:
    """The fields of one ``DownloadFileResponse``."""

    file: res.File | None
    offset: int
    data: bytes


class _Unsupported(ValueError):
    """An encoding this parser leaves to protobuf."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Unsupported("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def parse_download(frame: bytes) -> DownloadMessage:
    """The response deserializer of DownloadFile: the message's fields, the data copied once
    out of the frame."""
    try:
        return _parse(frame)
    except _Unsupported:
        message = pl.DownloadFileResponse.FromString(frame)
        file = message.file if message.HasField("file") else None
        return DownloadMessage(file, message.offset, message.data)


def _parse(frame: bytes) -> DownloadMessage:
    file: res.File | None = None
    offset = 0
    data = b""
    pos, end = 0, len(frame)
    while pos < end:
        key, pos = _read_varint(frame, pos)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            value, pos = _read_varint(frame, pos)
            if number == 2:
                offset = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == _LEN:
            size, pos = _read_varint(frame, pos)
            stop = pos + size
            if stop > end:
                raise _Unsupported("truncated field")
            if number == 3:
                data = frame[pos:stop]
            elif number == 1:
                part = res.File.FromString(frame[pos:stop])
                if file is None:
                    file = part
                else:
                    file.MergeFrom(part)  # a repeated embedded message merges, as protobuf does
            pos = stop
        elif kind in (_I64, _I32):
            pos += 8 if kind == _I64 else 4
        else:
            raise _Unsupported(f"wire type {kind}")
    if pos != end:
        raise _Unsupported("truncated field")
    return DownloadMessage(file, offset, data)


def _path(method: str) -> str:
    full = pl.DESCRIPTOR.services_by_name["PayloadService"].methods_by_name[method].full_name
    service, _, name = full.rpartition(".")
    return f"/{service}/{name}"


class TransferCalls:
    """UploadFile and DownloadFile on a channel, with the framing serializers above."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.upload: Any = channel.stream_unary(
            _path("UploadFile"),
            request_serializer=serialize_upload,
            response_deserializer=res.File.FromString,
        )
        self.download: Any = channel.unary_stream(
            _path("DownloadFile"),
            request_serializer=pl.DownloadFileRequest.SerializeToString,
            response_deserializer=parse_download,
        )


UploadRequests = Iterator[pl.UploadFileRequest | bytes]
