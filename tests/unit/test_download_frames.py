"""The server's DownloadFile frames are byte for byte what protobuf writes for the same
DownloadFileResponse, so every client parses them as before."""

from __future__ import annotations

import pytest

from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.api import download_frames as frames

FILE = res.File(name="models/m/versions/1/files/f", size_bytes=9, sha256="ab" * 32, crc32c=7)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_384, 1 << 20])
@pytest.mark.parametrize("offset", [0, 1, 127, 128, 1 << 21, (1 << 40) + 3])
@pytest.mark.parametrize("with_file", [False, True])
def test_frames_are_the_protobuf_serialisation(offset: int, size: int, with_file: bool) -> None:
    data = bytes(size % 253 for _ in range(size))
    expected = pl.DownloadFileResponse(offset=offset, data=data)
    head = b""
    if with_file:
        expected.file.CopyFrom(FILE)
        head = frames.file_field(FILE.SerializeToString())
    assert frames.frame(offset, data, head) == expected.SerializeToString()


def test_varint_refuses_negative_values() -> None:
    with pytest.raises(ValueError):
        frames.varint(-1)
