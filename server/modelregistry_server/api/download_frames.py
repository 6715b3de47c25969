"""DownloadFile messages in their wire form, built around the data without protobuf.

Building a ``DownloadFileResponse`` per message copies its data into the message and again
into the serialised bytes, and allocating those fresh megabytes is most of a download's cost
(docs/design.md, "Downloads without a message per chunk"). The servicer instead hands the
serving edge ``bytes`` that already are the serialised message, and the edge passes them to
gRPC as they are. A frame is the protobuf encoding of ``DownloadFileResponse{file, offset,
data}``: fields in number order, defaults left out, exactly what ``SerializeToString`` makes.
"""

from __future__ import annotations

# Field keys of DownloadFileResponse: (field number << 3) | wire type.
_FILE_KEY = b"\x0a"  # field 1, length-delimited (the File message)
_OFFSET_KEY = b"\x10"  # field 2, varint
_DATA_KEY = b"\x1a"  # field 3, length-delimited


def varint(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative integer (as protobuf writes it)."""
    if value < 0:
        raise ValueError(f"varint takes a non-negative integer, got {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def file_field(file_message: bytes) -> bytes:
    """Field 1 (``file``) around an already serialised ``File``."""
    return _FILE_KEY + varint(len(file_message)) + file_message


def frame(offset: int, data: bytes, head: bytes = b"") -> bytes:
    """The serialised ``DownloadFileResponse`` carrying ``data`` at ``offset``; ``head`` is
    the :func:`file_field` of the first message (empty for the others). One copy of
    ``data``, into the frame."""
    prefix = head
    if offset:
        prefix += _OFFSET_KEY + varint(offset)
    if not data:
        return prefix
    return b"".join((prefix, _DATA_KEY, varint(len(data)), data))
