"""Messages to multipart frames and back: the one place that knows msgpack, the header and the version."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import msgpack
import numpy as np

from das_core.wire.protocol.bodies import ServerInfo, reply_body
from das_core.wire.protocol.fields import Fields
from das_core.wire.protocol.images import EncodedImage
from das_core.wire.protocol.limits import DEFAULT_LIMITS, Limits, ProtocolError, check_job_id
from das_core.wire.protocol.messages import (
    Accepted,
    Cancel,
    DepthRequest,
    DepthResult,
    Done,
    ErrorReply,
    Fetch,
    Frame,
    Hello,
    Info,
    JobFailed,
    ListJobs,
    Message,
    Progress,
    Reply,
    StatusRequest,
    Submit,
)

VERSION = 1

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
    DepthRequest: "depth",
    DepthResult: "depth_result",
}


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
        )
        if message.point_tracks is None:
            header["tracking"] = [image(frame) for frame in message.tracking]
        else:
            tracks = message.point_tracks
            header["point_tracks"] = {"frames": tracks.frames, "points": tracks.points}
            buffers.extend((tracks.positions, tracks.visibility))
        if message.windows is not None:  # absent for one window, as before windows existed
            header["windows"] = list(message.windows)
    elif isinstance(message, Info):
        header["info"] = message.body.to_wire()
    elif isinstance(message, Reply):
        header["body"] = message.body.to_wire()
    elif isinstance(message, Progress):
        header.update(
            job_id=message.job_id, phase=message.phase, step=message.step, total=message.total, eta_s=message.eta_s
        )
        if message.preview is not None:
            header["preview"] = image(message.preview)
    elif isinstance(message, Frame):
        header.update(job_id=message.job_id, index=message.index, image=image(message.image, "raw"))
    elif isinstance(message, DepthRequest):
        header["image"] = image(message.image)
    elif isinstance(message, DepthResult):
        depth = np.ascontiguousarray(message.depth, dtype="<f4")
        if depth.ndim != 2:
            raise ProtocolError(f"a depth map must be [H, W], got {list(depth.shape)}", "bad_request")
        buffers.append(depth.tobytes())
        header.update(
            model=message.model,
            metric=message.metric,
            fov_deg=message.fov_deg,
            depth={"shape": list(depth.shape), "dtype": "float32"},
        )
    else:
        header.update(asdict(message))
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise ProtocolError(f"cannot encode {kind} message: {error}") from None
    return [packed, *buffers]


def decode(
    parts: Sequence[bytes | memoryview], limits: Limits = DEFAULT_LIMITS, *, decode_images: bool = True
) -> tuple[Message, int | None]:
    """Parse multipart frames into `(message, req)`; raise `ProtocolError` on anything malformed.

    With `decode_images=False` (the server) images stay `EncodedImage`s: only their headers are
    checked here, and pixels are inflated later by whoever needs them.
    """
    if not parts:
        raise ProtocolError("empty message")
    if len(parts) > limits.max_message_frames:
        raise ProtocolError(
            f"message has {len(parts)} frames; at most {limits.max_message_frames} are allowed", "limit"
        )
    raw_header = parts[0]
    if len(raw_header) > limits.max_header_bytes:
        raise ProtocolError(f"message header is {len(raw_header)} bytes; at most {limits.max_header_bytes}", "limit")
    header = _unpack_header(raw_header, limits)
    version = header.get("v")
    if version != VERSION:
        raise ProtocolError(
            f"peer speaks das protocol version {version!r}, this side speaks {VERSION}; "
            "install the same das version on the client and the server",
            "version",
        )
    kind = header.get("type")
    req = header.get("req")
    if req is not None and (not isinstance(req, int) or isinstance(req, bool) or not 0 <= req <= limits.max_request_id):
        raise ProtocolError("req must be a non-negative integer")
    fields = Fields(header, parts[1:], limits, decode_images)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ProtocolError(f"unknown message type {str(kind)[:40]!r}", "unknown_type")
    try:
        message = builder(fields)
        fields.finish()
    except ProtocolError as error:
        error.req = req  # so the refusal reaches the request that is waiting for it
        raise
    return message, req


def _unpack_header(raw: bytes | memoryview, limits: Limits) -> dict:
    limit = limits.max_header_bytes
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limits.max_header_list_len,
            max_map_len=limits.max_header_map_len,
            max_ext_len=0,
        )
    except Exception as error:  # msgpack raises several types on truncated or hostile input
        raise ProtocolError(f"header is not valid msgpack: {type(error).__name__}: {error}"[:200]) from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a msgpack map, got {type(header).__name__}")
    return header


def _build_submit(fields: Fields) -> Submit:
    fields.decode_images = False  # a submit keeps its images encoded until `to_request()`
    point_tracks = None
    if fields.has("point_tracks"):
        if fields.has("tracking"):
            raise ProtocolError("a submit carries a tracking video or point tracks, not both", "bad_request")
        image = fields.image("image")
        frames: tuple = ()
        point_tracks = fields.point_tracks("point_tracks")
    else:
        tracking = fields.field("tracking", list)
        limits = fields.limits
        if not 1 <= len(tracking) <= limits.max_control_frames:  # each window's frames: `Submit.validate`
            raise ProtocolError(
                f"the tracking video has {len(tracking)} frames; this server takes 1 to {limits.max_frames} per "
                f"window and at most {limits.max_windows} windows",
                "limit",
            )
        image = fields.image("image")
        frames = tuple(fields.image(f"tracking[{i}]", descriptor) for i, descriptor in enumerate(tracking))
    submit = Submit(
        job_id=fields.job_id(),
        prompt=fields.text("prompt"),
        image=image,
        tracking=frames,
        negative_prompt=fields.optional_text("negative_prompt"),
        seed=fields.integer("seed"),
        steps=fields.integer("steps"),
        guidance=fields.number("guidance"),
        fps=fields.number("fps"),
        client=fields.optional_text("client") or "",
        point_tracks=point_tracks,
        windows=fields.optional_integers("windows"),
    )
    submit.validate(fields.limits)
    return submit


def _build_progress(fields: Fields) -> Progress:
    eta = fields.optional_number("eta_s")
    return Progress(
        job_id=fields.job_id(),
        phase=fields.text("phase"),
        step=fields.integer("step"),
        total=fields.integer("total"),
        eta_s=eta,
        preview=fields.image("preview", optional=True),
    )


def _build_fetch(fields: Fields) -> Fetch:
    from_index = fields.optional_integer("from_index") or 0
    if not 0 <= from_index <= fields.limits.max_frame_index:
        raise ProtocolError(
            f"from_index is {from_index}; it must be a frame index from 0 to {fields.limits.max_frame_index}"
        )
    return Fetch(fields.job_id(), from_index)


def _build_status(fields: Fields) -> StatusRequest:
    job_id = fields.optional_field("job_id", str)
    return StatusRequest(None if job_id is None else check_job_id(job_id))


def _build_depth_result(fields: Fields) -> DepthResult:
    return DepthResult(
        depth=fields.depth_map("depth"),
        model=fields.text("model"),
        metric=fields.flag("metric"),
        fov_deg=fields.optional_number("fov_deg"),
    )


_BUILDERS: dict[str, Callable[[Fields], Message]] = {
    "hello": lambda r: Hello(r.optional_text("client") or ""),
    "submit": _build_submit,
    "cancel": lambda r: Cancel(r.job_id()),
    "status": _build_status,
    "fetch": _build_fetch,
    "list": lambda r: ListJobs(),
    "info": lambda r: Info(ServerInfo.from_wire(r.nested("info"))),
    "reply": lambda r: Reply(reply_body(r.nested("body"))),
    "error": lambda r: ErrorReply(r.text("code"), r.text("message")),
    "accepted": lambda r: Accepted(r.job_id(), r.integer("position")),
    "progress": _build_progress,
    "frame": lambda r: Frame(r.job_id(), r.integer("index"), r.image("image")),
    "done": lambda r: Done(r.job_id(), r.integer("num_frames"), r.text("checksum"), r.mapping("metadata")),
    "failed": lambda r: JobFailed(r.job_id(), r.text("code"), r.text("message")),
    "depth": lambda r: DepthRequest(r.image("image")),
    "depth_result": _build_depth_result,
}
