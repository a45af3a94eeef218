"""`Fields`: checked, typed reads of a decoded header map and the binary image frames that follow it."""

from __future__ import annotations

from typing import Any

import msgpack

from das_core.wire.protocol.images import CODECS, EncodedImage
from das_core.wire.protocol.limits import Limits, ProtocolError, check_job_id


class Fields:
    """Typed access to header fields and the binary frames that follow, with limits."""

    def __init__(self, header: dict, buffers: list[bytes], limits: Limits, decode_images: bool) -> None:
        self.header = header
        self.buffers = buffers
        self.limits = limits
        self.decode_images = decode_images
        self.used = 0

    def field(self, name: str, kinds: type | tuple, *, optional: bool = False, default: Any = None) -> Any:
        value = self.header.get(name)
        if value is None:
            if optional:
                return default
            raise ProtocolError(f"field {name!r} is missing")
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise ProtocolError(f"field {name!r} must be {_kind_names(kinds)}, got bool")
        if not isinstance(value, kinds):
            raise ProtocolError(f"field {name!r} must be {_kind_names(kinds)}, got {type(value).__name__}")
        return value

    def job_id(self) -> str:
        return check_job_id(self.field("job_id", str))

    def text(self, name: str, *, optional: bool = False) -> str | None:
        value = self.field(name, str, optional=optional)
        if value is not None and len(value) > self.limits.max_prompt_chars:
            raise ProtocolError(
                f"field {name!r} is {len(value)} characters; at most {self.limits.max_prompt_chars}", "limit"
            )
        return value

    def integer(self, name: str, *, optional: bool = False, default: int | None = None) -> int:
        return self.field(name, int, optional=optional, default=default)

    def number(self, name: str, *, optional: bool = False, default: float | None = None) -> float | None:
        value = self.field(name, (int, float), optional=optional, default=default)
        return None if value is None else float(value)

    def mapping(self, name: str) -> dict:
        value = self.field(name, dict)
        if len(msgpack.packb(value, use_bin_type=True)) > self.limits.max_metadata_bytes:
            raise ProtocolError(f"field {name!r} is larger than {self.limits.max_metadata_bytes} bytes", "limit")
        return value

    def image(self, name: str, descriptor: Any = None, *, optional: bool = False) -> Any:
        if descriptor is None:
            descriptor = self.field(name, dict, optional=optional)
            if descriptor is None:
                return None
        if not isinstance(descriptor, dict):
            raise ProtocolError(f"image {name!r} must be described by a map with shape and codec")
        shape, codec = descriptor.get("shape"), descriptor.get("codec")
        if (
            not isinstance(shape, list)
            or len(shape) != 3
            or shape[2] != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        ):
            raise ProtocolError(f"image {name!r} needs shape [H, W, 3] of integers, got {str(shape)[:60]}")
        if codec not in CODECS:
            raise ProtocolError(f"image {name!r} has unknown codec {str(codec)[:20]!r}; use one of {', '.join(CODECS)}")
        self.limits.check_size(f"image {name!r}", shape[0], shape[1])
        if self.used >= len(self.buffers):
            raise ProtocolError(f"image {name!r} has no binary frame; the message is truncated")
        data = bytes(self.buffers[self.used])
        self.used += 1
        if len(data) > self.limits.max_part_bytes:
            raise ProtocolError(f"image {name!r} is {len(data)} bytes; at most {self.limits.max_part_bytes}", "limit")
        encoded = EncodedImage(shape[0], shape[1], codec, data)
        return encoded.decode() if self.decode_images else encoded

    def finish(self) -> None:
        if self.used != len(self.buffers):
            raise ProtocolError(f"message has {len(self.buffers)} binary frames but its header describes {self.used}")


def _kind_names(kinds: type | tuple) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)
