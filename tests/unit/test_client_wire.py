"""The client's transfer frames are exactly what protobuf writes and reads: upload chunks
serialise like the generated message, download messages parse like it (fields in any order,
unknown fields, negative offsets), and what it does not handle goes to protobuf."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from modelregistry.client.wire import parse_download, serialize_upload, upload_chunk
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res

SIZES = [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 20]
OFFSETS = [0, 1, 127, 128, 1 << 21, (1 << 40) + 3]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", OFFSETS)
def test_upload_chunk_is_the_generated_serialisation(offset: int, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = pl.UploadFileRequest(chunk=pl.UploadChunk(offset=offset, data=data))
    assert upload_chunk(offset, data) == expected.SerializeToString()
    header = pl.UploadFileRequest(header=pl.UploadHeader(name="n", upload_id="u"))
    assert serialize_upload(header) == header.SerializeToString()


FILE = res.File(name="models/m/versions/1/files/f", size_bytes=9, sha256="ab" * 32, crc32c=7)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [*OFFSETS, -5])
def test_download_messages_parse_like_protobuf(offset: int, size: int) -> None:
    data = bytes(size % 251 for _ in range(size))
    for file in (None, FILE):
        message = pl.DownloadFileResponse(offset=offset, data=data)
        if file is not None:
            message.file.CopyFrom(file)
        parsed = parse_download(message.SerializeToString())
        assert (parsed.file, parsed.offset, parsed.data) == (file, offset, data)


def test_download_fields_in_any_order_and_unknown_fields() -> None:
    data = b"payload"
    frame = (
        pl.DownloadFileResponse(data=data).SerializeToString()
        + b"\x78\x05"  # field 15, varint
        + b"\x81\x01"
        + bytes(8)  # field 16, 64-bit
        + b"\x8a\x01\x02hi"  # field 17, length-delimited
        + b"\x95\x01"
        + bytes(4)  # field 18, 32-bit
        + pl.DownloadFileResponse(offset=42, file=FILE).SerializeToString()
    )
    parsed = parse_download(frame)
    assert (parsed.file, parsed.offset, parsed.data) == (FILE, 42, data)
    # A group (wire type 3/4) is left to protobuf, which parses it the same way.
    grouped = pl.DownloadFileResponse(offset=3, data=data).SerializeToString() + b"\x9b\x01\x9c\x01"
    parsed = parse_download(grouped)
    assert (parsed.file, parsed.offset, parsed.data) == (None, 3, data)


def test_a_truncated_download_message_is_refused_as_protobuf_refuses_it() -> None:
    frame = pl.DownloadFileResponse(offset=1, data=b"abcdef").SerializeToString()
    with pytest.raises(DecodeError):
        parse_download(frame[:-2])
