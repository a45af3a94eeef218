"""What a peer may send: `Limits`, the job id rule, and `ProtocolError` for anything beyond them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ProtocolError(DasError):
    """A message that does not follow the das protocol; `code` says which rule it broke."""

    def __init__(self, message: str, code: str = "bad_message") -> None:
        super().__init__(message)
        self.code = code
        self.req: int | None = None  # the request it answers, once the header has been read


@dataclass(frozen=True)
class Limits:
    """Bounds on every field a peer may send, checked before anything is allocated.

    A server sets the first eight (`PUBLISHED`) from its command line and reports them in `info`;
    the rest are fixed by protocol version 1, so both sides already know them. `max_frames` bounds one
    window; a job of several windows (`submit` `windows`) carries up to `max_control_frames` in all.
    """

    PUBLISHED: ClassVar[tuple[str, ...]] = (
        "max_frames",
        "max_width",
        "max_height",
        "max_prompt_chars",
        "max_steps",
        "max_part_bytes",
        "max_metadata_bytes",
        "max_windows",
    )

    max_frames: int = DAS_WINDOW.frames
    max_width: int = 1920
    max_height: int = 1080
    max_prompt_chars: int = 2000
    max_steps: int = 200
    max_part_bytes: int = 8 << 20  # one image frame (raw 1920x1080 is 6.2 MB); also ZMQ_MAXMSGSIZE
    max_metadata_bytes: int = 64 << 10
    max_windows: int = 16  # windows in one job; 1 (a server before windows) is not published
    max_header_bytes: int = 1 << 20
    max_header_list_len: int = 4096  # items in any one list of the header (a submit lists its frames)
    max_header_map_len: int = 1024  # keys in any one map of the header
    max_client_chars: int = 200
    max_seed: int = 2**63 - 1  # seeds and request numbers fit a signed 64-bit integer
    max_request_id: int = 2**63 - 1
    max_guidance: float = 50.0
    min_fps: float = 0.1
    max_fps: float = 240.0
    max_frame_index: int = (1 << 20) - 1  # `fetch` from_index
    # Point tracks (`submit` with `point_tracks`): 8192 x 81 frames of positions is 5.3 MB, one binary frame.
    max_points: int = 8192
    max_track_coordinate: float = 65536.0  # pixels either way: far outside any image

    @property
    def max_control_frames(self) -> int:
        """Control frames in one job: every window at its longest."""
        return self.max_frames * self.max_windows

    @property
    def max_message_frames(self) -> int:
        """Frames in one message: the header, the reference image and one per tracking frame (point tracks
        take two)."""
        return self.max_control_frames + 2

    def published(self) -> dict[str, int]:
        """The limits `info` reports, in their wire order; `max_windows` only when jobs may have several
        (a reader takes its absence as 1, so an older server's `info` reads back to the same bytes)."""
        return {name: getattr(self, name) for name in self.PUBLISHED if name != "max_windows" or self.max_windows != 1}

    def check_size(self, what: str, height: int, width: int) -> None:
        """Raise `ProtocolError` when an image is larger than allowed."""
        if not (1 <= height <= self.max_height and 1 <= width <= self.max_width):
            raise ProtocolError(
                f"{what} is {width}x{height}; this server accepts 1x1 up to "
                f"{self.max_width}x{self.max_height} (resize it, e.g. to 720x480)",
                "limit",
            )


DEFAULT_LIMITS = Limits()


def check_job_id(job_id: object) -> str:
    """Return `job_id` if it is 1-64 letters, digits, '-' or '_' (so it can never name a path)."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        shown = repr(job_id)[:80]
        raise ProtocolError(
            f"job id {shown} is not valid; use 1-64 letters, digits, '-' or '_' starting with a letter or digit",
            "bad_job_id",
        )
    return job_id


def check_text(name: str, value: object, max_chars: int, *, allow_empty: bool) -> None:
    """Raise `ProtocolError` unless `value` is text of at most `max_chars` (and not blank, unless allowed)."""
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be text, got {type(value).__name__}", "bad_request")
    if not allow_empty and not value.strip():
        raise ProtocolError(f"{name} is empty; describe the video you want", "bad_request")
    if len(value) > max_chars:
        raise ProtocolError(f"{name} is {len(value)} characters; at most {max_chars} are allowed", "limit")
