"""`Fields`: checked, typed reads of a decoded header map and the binary image frames that follow it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from das_core.wire.protocol.images import CODECS, EncodedImage
from das_core.wire.protocol.limits import Limits, ProtocolError, check_job_id
from das_core.wire.protocol.point_tracks import EncodedPointTracks

Kinds = type | tuple[type, ...]


class Fields:
    """Typed access to one map of the header (and, at the top, the binary frames after it), with limits.

    Every read names the field in its `ProtocolError`; maps inside the header (`nested`) name
    their fields by path, e.g. 'limits.max_frames'.
    """

    def __init__(
        self,
        header: dict,
        buffers: Sequence[bytes | memoryview],
        limits: Limits,
        decode_images: bool,
        path: str = "",
    ) -> None:
        self.header = header
        self.buffers = buffers
        self.limits = limits
        self.decode_images = decode_images
        self.path = path
        self.used = 0

    def has(self, name: str) -> bool:
        return self.header.get(name) is not None

    def field(self, name: str, kinds: Kinds) -> Any:
        value = self.optional_field(name, kinds)
        if value is None:
            raise ProtocolError(f"field {self.path + name!r} is missing")
        return value

    def optional_field(self, name: str, kinds: Kinds) -> Any:
        value = self.header.get(name)
        if value is None:
            return None
        allowed = kinds if isinstance(kinds, tuple) else (kinds,)
        if isinstance(value, bool) and bool not in allowed:
            raise ProtocolError(f"field {self.path + name!r} must be {_kind_names(allowed)}, got bool")
        if not isinstance(value, allowed):
            raise ProtocolError(
                f"field {self.path + name!r} must be {_kind_names(allowed)}, got {type(value).__name__}"
            )
        return value

    def job_id(self) -> str:
        return check_job_id(self.field("job_id", str))

    def text(self, name: str) -> str:
        return self._checked_text(name, self.field(name, str))

    def optional_text(self, name: str) -> str | None:
        value = self.optional_field(name, str)
        return None if value is None else self._checked_text(name, value)

    def integer(self, name: str) -> int:
        value: int = self.field(name, int)
        return value

    def optional_integer(self, name: str) -> int | None:
        value: int | None = self.optional_field(name, int)
        return value

    def optional_integers(self, name: str) -> tuple[int, ...] | None:
        """A list of integers (the header's list bound limits its length)."""
        values = self.optional_field(name, list)
        if values is None:
            return None
        for index, value in enumerate(values):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ProtocolError(f"field {self.path}{name}[{index}] must be int, got {type(value).__name__}")
        return tuple(values)

    def number(self, name: str) -> float:
        return float(self.field(name, (int, float)))

    def optional_number(self, name: str) -> float | None:
        value = self.optional_field(name, (int, float))
        return None if value is None else float(value)

    def flag(self, name: str) -> bool:
        value: bool = self.field(name, bool)
        return value

    def mapping(self, name: str) -> dict:
        """A free-form map (result metadata), at most `max_metadata_bytes` packed."""
        value: dict = self.field(name, dict)
        if len(msgpack.packb(value, use_bin_type=True)) > self.limits.max_metadata_bytes:
            raise ProtocolError(
                f"field {self.path + name!r} is larger than {self.limits.max_metadata_bytes} bytes", "limit"
            )
        return value

    def nested(self, name: str) -> Fields:
        """The map in field `name`, read the same way."""
        return self._child(self.field(name, dict), f"{self.path}{name}.")

    def optional_nested(self, name: str) -> Fields | None:
        value = self.optional_field(name, dict)
        return None if value is None else self._child(value, f"{self.path}{name}.")

    def nested_list(self, name: str) -> list[Fields]:
        """The maps in list field `name`, each read the same way."""
        items = self.field(name, list)
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ProtocolError(f"field {self.path}{name}[{index}] must be a map, got {type(item).__name__}")
        return [self._child(item, f"{self.path}{name}[{index}].") for index, item in enumerate(items)]

    def image(self, name: str, descriptor: Any = None, *, optional: bool = False) -> Any:
        """The next binary frame as the image field `name` (or list item `descriptor`) describes it."""
        if descriptor is None:
            descriptor = self.optional_field(name, dict) if optional else self.field(name, dict)
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

    def depth_map(self, name: str) -> np.ndarray:
        """The next binary frame as the float32 [H, W] map field `name` describes, size checked first."""
        descriptor = self.field(name, dict)
        shape = descriptor.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int for n in shape)):
            raise ProtocolError(f"map {name!r} needs shape [H, W] of integers, got {str(shape)[:60]}")
        if descriptor.get("dtype") != "float32":
            raise ProtocolError(f"map {name!r} must be float32, got {str(descriptor.get('dtype'))[:20]!r}")
        self.limits.check_size(f"map {name!r}", shape[0], shape[1])
        if self.used >= len(self.buffers):
            raise ProtocolError(f"map {name!r} has no binary frame; the message is truncated")
        data = self.buffers[self.used]
        self.used += 1
        if len(data) != shape[0] * shape[1] * 4:
            raise ProtocolError(
                f"map {name!r} holds {len(data)} bytes, its header declares {shape[0]}x{shape[1]} floats"
            )
        return np.frombuffer(data, dtype="<f4").reshape(shape[0], shape[1]).astype(np.float32)

    def point_tracks(self, name: str) -> EncodedPointTracks:
        """The next two binary frames as the point tracks field `name` describes them ({frames, points}).

        T and N are checked against the limits, and each frame's length against them, before a value is read.
        """
        shape = self.nested(name)
        frames, points = shape.integer("frames"), shape.integer("points")
        EncodedPointTracks.check_shape(frames, points, self.limits)
        if self.used + 2 > len(self.buffers):
            raise ProtocolError(f"point tracks {name!r} need two binary frames; the message is truncated")
        positions, visibility = self.buffers[self.used], self.buffers[self.used + 1]
        self.used += 2
        expected = EncodedPointTracks.sizes(frames, points)
        if (len(positions), len(visibility)) != expected:
            raise ProtocolError(
                f"point tracks {name!r} of {frames} frames x {points} points need frames of {expected[0]} and "
                f"{expected[1]} bytes, got {len(positions)} and {len(visibility)}"
            )
        return EncodedPointTracks(frames, points, bytes(positions), bytes(visibility))

    def finish(self) -> None:
        """Raise unless every binary frame was described by the header."""
        if self.used != len(self.buffers):
            raise ProtocolError(f"message has {len(self.buffers)} binary frames but its header describes {self.used}")

    def _checked_text(self, name: str, value: str) -> str:
        if len(value) > self.limits.max_prompt_chars:
            raise ProtocolError(
                f"field {self.path + name!r} is {len(value)} characters; at most {self.limits.max_prompt_chars}",
                "limit",
            )
        return value

    def _child(self, header: dict, path: str) -> Fields:
        return Fields(header, (), self.limits, self.decode_images, path)


def _kind_names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)
