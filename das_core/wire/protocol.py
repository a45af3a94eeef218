"""The das wire protocol: the one module that knows msgpack, frame layout, version and limits.

A message is a ZeroMQ multipart message: one msgpack map (the header) followed by zero or more
binary frames, one per image. The header always holds `v` (the protocol version) and `type`;
client requests carry `req` (an integer the server echoes in its reply). Images travel as their
own frames, losslessly encoded (`png`, `zlib` or `raw` uint8 RGB), described in the header by
`{"shape": [H, W, 3], "codec": ...}`; never pickle, never base64. Every field is checked against
`Limits` before anything is allocated, and any problem raises `ProtocolError` with a readable
reason. The full description is `PROTOCOL.md` beside this file.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack
import numpy as np

from das_core.errors import DasError

VERSION = 1
CODECS = ("png", "zlib", "raw")
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. "
    "The background is solid. Strange body and strange trajectory. Distortion."
)

_MAX_HEADER_BYTES = 1 << 20
_STORED_MAGIC = b"DASMSG1\n"


class ProtocolError(DasError):
    """A message that does not follow the das protocol; `code` says which rule it broke."""

    def __init__(self, message: str, code: str = "bad_message") -> None:
        super().__init__(message)
        self.code = code
        self.req: int | None = None  # the request it answers, once the header has been read


@dataclass(frozen=True)
class Limits:
    """Upper bounds on every field a peer may send; the server publishes its own in `info`."""

    max_frames: int = 49
    max_width: int = 1920
    max_height: int = 1080
    max_prompt_chars: int = 2000
    max_steps: int = 200
    max_part_bytes: int = 8 << 20  # one image frame (raw 1920x1080 is 6.2 MB); also ZMQ_MAXMSGSIZE
    max_metadata_bytes: int = 64 << 10

    def check_size(self, what: str, height: int, width: int) -> None:
        """Raise `ProtocolError` when an image is larger than allowed."""
        if not (1 <= height <= self.max_height and 1 <= width <= self.max_width):
            raise ProtocolError(
                f"{what} is {width}x{height}; this server accepts 1x1 up to "
                f"{self.max_width}x{self.max_height} (resize it, e.g. to 720x480)",
                "limit",
            )


DEFAULT_LIMITS = Limits()


# ---------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class EncodedImage:
    """A uint8 RGB image in its wire form; `decode()` checks it really has the declared shape."""

    height: int
    width: int
    codec: str
    data: bytes

    @classmethod
    def encode(cls, image: np.ndarray, codec: str = "png") -> EncodedImage:
        """Encode a uint8 [H, W, 3] array losslessly with `codec` (png, zlib or raw)."""
        array = np.ascontiguousarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ProtocolError(
                f"images must be uint8 [H, W, 3] RGB arrays, got {array.dtype} {list(array.shape)}",
                "bad_image",
            )
        height, width = array.shape[:2]
        if codec == "raw":
            data = array.tobytes()
        elif codec == "zlib":
            data = zlib.compress(array.tobytes(), 1)
        elif codec == "png":
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(array, "RGB").save(buffer, "PNG", compress_level=1)
            data = buffer.getvalue()
        else:
            raise ProtocolError(f"unknown image codec {codec!r}; use one of {', '.join(CODECS)}", "bad_image")
        return cls(height, width, codec, data)

    @property
    def nbytes(self) -> int:
        """Size of the decoded image in bytes."""
        return self.height * self.width * 3

    def decode(self) -> np.ndarray:
        """The uint8 [H, W, 3] array; raises `ProtocolError` if the data does not match the header."""
        expected = self.nbytes
        if self.codec == "raw":
            if len(self.data) != expected:
                raise ProtocolError(
                    f"raw image holds {len(self.data)} bytes, its header declares {expected}", "bad_image"
                )
            raw = self.data
        elif self.codec == "zlib":
            decompressor = zlib.decompressobj()
            try:
                raw = decompressor.decompress(self.data, expected)  # never inflate past the declared size
            except zlib.error as error:
                raise ProtocolError(f"zlib image does not decompress: {error}", "bad_image") from None
            if len(raw) != expected or decompressor.unconsumed_tail:
                raise ProtocolError(
                    f"zlib image does not hold exactly {self.width}x{self.height} RGB pixels", "bad_image"
                )
        elif self.codec == "png":
            return self._decode_png()
        else:
            raise ProtocolError(f"unknown image codec {self.codec!r}", "bad_image")
        return np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3)

    def _decode_png(self) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.data), formats=["PNG"]) as image:
                if image.size != (self.width, self.height):  # checked before any pixel is inflated
                    raise ProtocolError(
                        f"PNG image is {image.size[0]}x{image.size[1]}, its header declares {self.width}x{self.height}",
                        "bad_image",
                    )
                array = np.asarray(image.convert("RGB"))
        except ProtocolError:
            raise
        except Exception as error:  # PIL raises many types for corrupt data
            raise ProtocolError(f"PNG image does not decode: {error}", "bad_image") from None
        return np.ascontiguousarray(array, dtype=np.uint8)


def frame_digest(image: np.ndarray) -> bytes:
    """BLAKE2b-256 of one frame's raw uint8 bytes (row-major RGB); 3x faster than SHA-256 here."""
    return hashlib.blake2b(np.ascontiguousarray(image, dtype=np.uint8).data, digest_size=32).digest()


def result_checksum(frame_digests: list[bytes]) -> str:
    """The checksum `done` carries: BLAKE2b-256 over the frames' digests in index order."""
    return "blake2b:" + hashlib.blake2b(b"".join(frame_digests), digest_size=32).hexdigest()


# ---------------------------------------------------------------------------------------------
# Messages


@dataclass
class JobRequest:
    """One generation job: a prompt, the reference (first) frame and the tracking video."""

    prompt: str
    image: np.ndarray  # uint8 [H, W, 3]
    tracking: np.ndarray  # uint8 [T, H, W, 3]
    negative_prompt: str | None = None
    seed: int = 42
    steps: int = 50
    guidance: float = 6.0
    job_id: str | None = None  # the client makes a uuid when None
    fps: float = 8.0


@dataclass(frozen=True)
class Hello:
    client: str = ""


@dataclass(frozen=True)
class Submit:
    """A job on the wire: the images stay encoded until the worker needs them."""

    job_id: str
    prompt: str
    image: EncodedImage
    tracking: tuple[EncodedImage, ...]
    negative_prompt: str | None = None
    seed: int = 42
    steps: int = 50
    guidance: float = 6.0
    fps: float = 8.0
    client: str = ""

    @classmethod
    def from_request(cls, request: JobRequest, job_id: str, client: str = "", codec: str = "png") -> Submit:
        """Validate and encode a `JobRequest` (tracking frames and image as lossless `codec`)."""
        tracking = np.asarray(request.tracking)
        if tracking.dtype != np.uint8 or tracking.ndim != 4 or tracking.shape[-1] != 3:
            raise ProtocolError(
                f"tracking must be a uint8 [T, H, W, 3] video, got {tracking.dtype} {list(tracking.shape)}",
                "bad_request",
            )
        submit = cls(
            job_id=job_id,
            prompt=request.prompt,
            image=EncodedImage.encode(np.asarray(request.image), codec),
            tracking=tuple(EncodedImage.encode(frame, codec) for frame in tracking),
            negative_prompt=request.negative_prompt,
            seed=int(request.seed),
            steps=int(request.steps),
            guidance=float(request.guidance),
            fps=float(request.fps),
            client=client,
        )
        submit.validate(DEFAULT_LIMITS)
        return submit

    def validate(self, limits: Limits) -> None:
        """Raise `ProtocolError` naming the first field outside `limits`."""
        check_job_id(self.job_id)
        _check_text("prompt", self.prompt, limits.max_prompt_chars, allow_empty=False)
        if self.negative_prompt is not None:
            _check_text("negative_prompt", self.negative_prompt, limits.max_prompt_chars, allow_empty=True)
        _check_text("client", self.client, 200, allow_empty=True)
        if not 1 <= self.steps <= limits.max_steps:
            raise ProtocolError(f"steps is {self.steps}; use 1 to {limits.max_steps} (50 is the default)", "limit")
        if not 0 <= self.seed < 2**63:
            raise ProtocolError(f"seed is {self.seed}; use an integer from 0 to 2**63 - 1", "limit")
        if not (math.isfinite(self.guidance) and 0.0 <= self.guidance <= 50.0):
            raise ProtocolError(f"guidance is {self.guidance}; use a number from 0 to 50 (6.0 is usual)", "limit")
        if not (math.isfinite(self.fps) and 0.1 <= self.fps <= 240.0):
            raise ProtocolError(f"fps is {self.fps}; use a number from 0.1 to 240", "limit")
        if not 1 <= len(self.tracking) <= limits.max_frames:
            raise ProtocolError(
                f"the tracking video has {len(self.tracking)} frames; this server takes 1 to "
                f"{limits.max_frames} (sample longer videos down, e.g. with das_core.tracking.video.sample_indices)",
                "limit",
            )
        limits.check_size("the reference image", self.image.height, self.image.width)
        first = self.tracking[0]
        limits.check_size("the tracking video", first.height, first.width)
        for index, frame in enumerate(self.tracking):
            if (frame.height, frame.width) != (first.height, first.width):
                raise ProtocolError(
                    f"tracking frame {index} is {frame.width}x{frame.height}, frame 0 is "
                    f"{first.width}x{first.height}; all frames must have one size",
                    "bad_request",
                )

    def to_request(self) -> JobRequest:
        """Decode the images into a `JobRequest` (raises `ProtocolError` on corrupt image data)."""
        return JobRequest(
            prompt=self.prompt,
            image=self.image.decode(),
            tracking=np.stack([frame.decode() for frame in self.tracking]),
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            job_id=self.job_id,
            fps=self.fps,
        )


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class StatusRequest:
    job_id: str | None = None


@dataclass(frozen=True)
class Fetch:
    """Send a job's events again (frames from `from_index` on) and keep streaming until it ends."""

    job_id: str
    from_index: int = 0


@dataclass(frozen=True)
class ListJobs:
    pass


@dataclass(frozen=True)
class Info:
    """The server's answer to `hello`: version, backend, model, device, queue, limits."""

    fields: dict


@dataclass(frozen=True)
class Reply:
    """The answer to status, list and cancel."""

    body: dict


@dataclass(frozen=True)
class ErrorReply:
    """A request the server refused; `code` is machine-readable, `message` is for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Accepted:
    """The job is stored and queued; `position` jobs are ahead of it (sent again as the queue moves)."""

    job_id: str
    position: int = 0


@dataclass(frozen=True)
class Progress:
    job_id: str
    phase: str
    step: int
    total: int
    eta_s: float | None = None
    preview: np.ndarray | None = field(default=None, compare=False)  # small uint8 [h, w, 3]


@dataclass(frozen=True)
class Frame:
    """One result frame; `image` is an array once decoded, an `EncodedImage` on the server side."""

    job_id: str
    index: int
    image: Any = field(compare=False)


@dataclass(frozen=True)
class Done:
    job_id: str
    num_frames: int
    checksum: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed:
    job_id: str
    code: str
    message: str


Message = (
    Hello
    | Submit
    | Cancel
    | StatusRequest
    | Fetch
    | ListJobs
    | Info
    | Reply
    | ErrorReply
    | Accepted
    | Progress
    | Frame
    | Done
    | JobFailed
)
Event = Accepted | Progress | Frame | Done | JobFailed

_TYPE_NAMES = {
    Hello: "hello",
    Submit: "submit",
    Cancel: "cancel",
    StatusRequest: "status",
    Fetch: "fetch",
    ListJobs: "list",
    Info: "info",
    Reply: "reply",
    ErrorReply: "error",
    Accepted: "accepted",
    Progress: "progress",
    Frame: "frame",
    Done: "done",
    JobFailed: "failed",
}


def check_job_id(job_id: object) -> str:
    """Return `job_id` if it is 1-64 letters, digits, '-' or '_' (so it can never name a path)."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        shown = repr(job_id)[:80]
        raise ProtocolError(
            f"job id {shown} is not valid; use 1-64 letters, digits, '-' or '_' starting with a letter or digit",
            "bad_job_id",
        )
    return job_id


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(message: Message, req: int | None = None) -> list[bytes]:
    """Serialise `message` into multipart frames: [msgpack header, image frames...]."""
    kind = _TYPE_NAMES.get(type(message))
    if kind is None:
        raise ProtocolError(f"cannot encode {type(message).__name__}: not a protocol message")
    header: dict[str, Any] = {"v": VERSION, "type": kind}
    if req is not None:
        header["req"] = req
    buffers: list[bytes] = []

    def image(value: Any, codec: str = "png") -> dict:
        encoded = value if isinstance(value, EncodedImage) else EncodedImage.encode(value, codec)
        buffers.append(encoded.data)
        return {"shape": [encoded.height, encoded.width, 3], "codec": encoded.codec}

    if isinstance(message, Submit):
        header.update(
            job_id=message.job_id,
            prompt=message.prompt,
            negative_prompt=message.negative_prompt,
            seed=message.seed,
            steps=message.steps,
            guidance=message.guidance,
            fps=message.fps,
            client=message.client,
            image=image(message.image),
            tracking=[image(frame) for frame in message.tracking],
        )
    elif isinstance(message, Info):
        header["info"] = message.fields
    elif isinstance(message, Reply):
        header["body"] = message.body
    elif isinstance(message, Progress):
        header.update(
            job_id=message.job_id, phase=message.phase, step=message.step, total=message.total, eta_s=message.eta_s
        )
        if message.preview is not None:
            header["preview"] = image(message.preview)
    elif isinstance(message, Frame):
        header.update(job_id=message.job_id, index=message.index, image=image(message.image, "raw"))
    else:
        header.update(asdict(message))
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise ProtocolError(f"cannot encode {kind} message: {error}") from None
    return [packed, *buffers]


def decode(
    parts: list[bytes], limits: Limits = DEFAULT_LIMITS, *, decode_images: bool = True
) -> tuple[Message, int | None]:
    """Parse multipart frames into `(message, req)`; raise `ProtocolError` on anything malformed.

    With `decode_images=False` (the server) images stay `EncodedImage`s: only their headers are
    checked here, and pixels are inflated later by whoever needs them.
    """
    if not parts:
        raise ProtocolError("empty message")
    if len(parts) > limits.max_frames + 2:
        raise ProtocolError(f"message has {len(parts)} frames; at most {limits.max_frames + 2} are allowed", "limit")
    raw_header = parts[0]
    if len(raw_header) > _MAX_HEADER_BYTES:
        raise ProtocolError(f"message header is {len(raw_header)} bytes; at most {_MAX_HEADER_BYTES}", "limit")
    header = _unpack_header(raw_header)
    version = header.get("v")
    if version != VERSION:
        raise ProtocolError(
            f"peer speaks das protocol version {version!r}, this side speaks {VERSION}; "
            "install the same das version on the client and the server",
            "version",
        )
    kind = header.get("type")
    req = header.get("req")
    if req is not None and (not isinstance(req, int) or isinstance(req, bool) or not 0 <= req < 2**63):
        raise ProtocolError("req must be a non-negative integer")
    reader = _Reader(header, parts[1:], limits, decode_images)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ProtocolError(f"unknown message type {str(kind)[:40]!r}", "unknown_type")
    try:
        message = builder(reader)
        reader.finish()
    except ProtocolError as error:
        error.req = req  # so the refusal reaches the request that is waiting for it
        raise
    return message, req


def _unpack_header(raw: bytes) -> dict:
    limit = _MAX_HEADER_BYTES
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=4096,
            max_map_len=1024,
            max_ext_len=0,
        )
    except Exception as error:  # msgpack raises several types on truncated or hostile input
        raise ProtocolError(f"header is not valid msgpack: {type(error).__name__}: {error}"[:200]) from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a msgpack map, got {type(header).__name__}")
    return header


class _Reader:
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


def _job_id(reader: _Reader) -> str:
    return check_job_id(reader.field("job_id", str))


def _build_submit(reader: _Reader) -> Submit:
    tracking = reader.field("tracking", list)
    if not 1 <= len(tracking) <= reader.limits.max_frames:
        raise ProtocolError(
            f"the tracking video has {len(tracking)} frames; this server takes 1 to {reader.limits.max_frames}", "limit"
        )
    reader.decode_images = False  # a submit keeps its images encoded until `to_request()`
    image = reader.image("image")
    frames = tuple(reader.image(f"tracking[{i}]", descriptor) for i, descriptor in enumerate(tracking))
    submit = Submit(
        job_id=_job_id(reader),
        prompt=reader.text("prompt"),
        image=image,
        tracking=frames,
        negative_prompt=reader.text("negative_prompt", optional=True),
        seed=reader.integer("seed"),
        steps=reader.integer("steps"),
        guidance=reader.number("guidance"),
        fps=reader.number("fps"),
        client=reader.text("client", optional=True) or "",
    )
    submit.validate(reader.limits)
    return submit


def _build_progress(reader: _Reader) -> Progress:
    eta = reader.number("eta_s", optional=True)
    return Progress(
        job_id=_job_id(reader),
        phase=reader.text("phase"),
        step=reader.integer("step"),
        total=reader.integer("total"),
        eta_s=eta,
        preview=reader.image("preview", optional=True),
    )


def _build_fetch(reader: _Reader) -> Fetch:
    from_index = reader.integer("from_index", optional=True, default=0)
    if not 0 <= from_index < 1 << 20:
        raise ProtocolError(f"from_index is {from_index}; it must be a frame index >= 0")
    return Fetch(_job_id(reader), from_index)


def _build_status(reader: _Reader) -> StatusRequest:
    job_id = reader.field("job_id", str, optional=True)
    return StatusRequest(None if job_id is None else check_job_id(job_id))


_BUILDERS = {
    "hello": lambda r: Hello(r.text("client", optional=True) or ""),
    "submit": _build_submit,
    "cancel": lambda r: Cancel(_job_id(r)),
    "status": _build_status,
    "fetch": _build_fetch,
    "list": lambda r: ListJobs(),
    "info": lambda r: Info(r.mapping("info")),
    "reply": lambda r: Reply(r.mapping("body")),
    "error": lambda r: ErrorReply(r.text("code"), r.text("message")),
    "accepted": lambda r: Accepted(_job_id(r), r.integer("position")),
    "progress": _build_progress,
    "frame": lambda r: Frame(_job_id(r), r.integer("index"), r.image("image")),
    "done": lambda r: Done(_job_id(r), r.integer("num_frames"), r.text("checksum"), r.mapping("metadata")),
    "failed": lambda r: JobFailed(_job_id(r), r.text("code"), r.text("message")),
}


def _check_text(name: str, value: object, max_chars: int, *, allow_empty: bool) -> None:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be text, got {type(value).__name__}", "bad_request")
    if not allow_empty and not value.strip():
        raise ProtocolError(f"{name} is empty; describe the video you want", "bad_request")
    if len(value) > max_chars:
        raise ProtocolError(f"{name} is {len(value)} characters; at most {max_chars} are allowed", "limit")


# ---------------------------------------------------------------------------------------------
# Storage form of a message (the server keeps accepted submits on disk exactly as received)


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
