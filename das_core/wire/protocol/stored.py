"""The storage form of a message: the server keeps accepted submits on disk exactly as received."""

from __future__ import annotations

import struct

from das_core.wire.protocol.limits import ProtocolError

_STORED_MAGIC = b"DASMSG1\n"


def join_parts(parts: list[bytes]) -> bytes:
    """Pack multipart frames into one byte string (magic, count, then length-prefixed parts)."""
    chunks = [_STORED_MAGIC, struct.pack("<I", len(parts))]
    for part in parts:
        chunks.append(struct.pack("<Q", len(part)))
        chunks.append(bytes(part))
    return b"".join(chunks)


def split_parts(blob: bytes) -> list[bytes]:
    """Inverse of `join_parts`; raises `ProtocolError` on a truncated or foreign blob."""
    view = memoryview(blob)
    if bytes(view[: len(_STORED_MAGIC)]) != _STORED_MAGIC or len(view) < len(_STORED_MAGIC) + 4:
        raise ProtocolError("stored message has the wrong magic; it was not written by das", "bad_store")
    offset = len(_STORED_MAGIC)
    (count,) = struct.unpack_from("<I", view, offset)
    offset += 4
    parts = []
    for _ in range(count):
        if offset + 8 > len(view):
            raise ProtocolError("stored message is truncated", "bad_store")
        (length,) = struct.unpack_from("<Q", view, offset)
        offset += 8
        if offset + length > len(view):
            raise ProtocolError("stored message is truncated", "bad_store")
        parts.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(view):
        raise ProtocolError("stored message has trailing bytes", "bad_store")
    return parts
