"""The message dataclasses: one per message type, with `JobRequest` (a job as arrays) and its wire form `Submit`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from das_core.tracking.window import DAS_WINDOW, POINT_TRACKS, TRACKING_VIDEO, WAN_MOVE_WINDOW
from das_core.wire.protocol.bodies import ReplyBody, ServerInfo
from das_core.wire.protocol.images import EncodedImage
from das_core.wire.protocol.limits import Limits, ProtocolError, check_job_id, check_text
from das_core.wire.protocol.point_tracks import EncodedPointTracks

# What a client checks before sending: the most frames any model takes (the server checks its own limits).
_SENDABLE = Limits(max_frames=max(DAS_WINDOW.frames, WAN_MOVE_WINDOW.frames))


@dataclass
class JobRequest:
    """One generation job: a prompt, the reference (first) frame and the control the server's model follows.

    The control is either `tracking` (a DaS tracking video) or `point_tracks` with `visibility` (Wan-Move);
    `control` names which, as the server's `info` does.
    """

    prompt: str
    image: np.ndarray  # uint8 [H, W, 3]
    tracking: np.ndarray | None = None  # uint8 [T, H, W, 3]
    negative_prompt: str | None = None
    seed: int = 42
    steps: int = 50
    guidance: float = 6.0
    job_id: str | None = None  # the client makes a uuid when None
    fps: float = DAS_WINDOW.fps
    point_tracks: np.ndarray | None = None  # float32 [T, N, 2]: (x, y) in pixels of `image`
    visibility: np.ndarray | None = None  # bool [T, N]
    # A shot longer than one model window: the control's frames per window, in order (they sum to T).
    # Window k + 1's first frame is window k's last scene frame; None: one window of all T frames.
    windows: tuple[int, ...] | None = None

    @property
    def control(self) -> str:
        return POINT_TRACKS if self.point_tracks is not None else TRACKING_VIDEO

    def tracking_video(self) -> np.ndarray:
        """The tracking video; a `DasError` for a point-track job (the server refuses those before this)."""
        if self.tracking is None:
            raise ProtocolError("this job carries point tracks, not the tracking video this backend needs")
        return np.asarray(self.tracking)

    def tracks_and_visibility(self) -> tuple[np.ndarray, np.ndarray]:
        """The point tracks and their visibility; a `DasError` for a tracking-video job."""
        if self.point_tracks is None or self.visibility is None:
            raise ProtocolError("this job carries a tracking video, not the point tracks this backend needs")
        return np.asarray(self.point_tracks), np.asarray(self.visibility)


@dataclass(frozen=True)
class Hello:
    client: str = ""


@dataclass(frozen=True)
class Submit:
    """A job on the wire: the images stay encoded until the worker needs them.

    Its control is `tracking` (the frames of a tracking video) or, with `tracking` empty, `point_tracks`.
    """

    job_id: str
    prompt: str
    image: EncodedImage
    tracking: tuple[EncodedImage, ...]
    negative_prompt: str | None = None
    seed: int = 42
    steps: int = 50
    guidance: float = 6.0
    fps: float = DAS_WINDOW.fps
    client: str = ""
    point_tracks: EncodedPointTracks | None = None

    @property
    def control(self) -> str:
        return POINT_TRACKS if self.point_tracks is not None else TRACKING_VIDEO

    @property
    def control_frames(self) -> int:
        """Frames of its control (tracking video or point tracks)."""
        return self.point_tracks.frames if self.point_tracks is not None else len(self.tracking)

    @classmethod
    def from_request(cls, request: JobRequest, job_id: str, client: str = "", codec: str = "png") -> Submit:
        """Validate and encode a `JobRequest` (tracking frames and image as lossless `codec`)."""
        tracking: tuple[EncodedImage, ...] = ()
        point_tracks = None
        if (request.tracking is None) == (request.point_tracks is None):
            raise ProtocolError(
                "a job carries exactly one control: a tracking video (DaS) or point tracks (Wan-Move); "
                "ask the server's info which it needs",
                "bad_request",
            )
        if request.point_tracks is not None:
            if request.visibility is None:
                raise ProtocolError("point tracks need their visibility, bool [T, N]", "bad_request")
            point_tracks = EncodedPointTracks.encode(request.point_tracks, request.visibility, _SENDABLE)
        else:
            video = np.asarray(request.tracking)
            if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
                raise ProtocolError(
                    f"tracking must be a uint8 [T, H, W, 3] video, got {video.dtype} {list(video.shape)}",
                    "bad_request",
                )
            tracking = tuple(EncodedImage.encode(frame, codec) for frame in video)
        submit = cls(
            job_id=job_id,
            prompt=request.prompt,
            image=EncodedImage.encode(np.asarray(request.image), codec),
            tracking=tracking,
            negative_prompt=request.negative_prompt,
            seed=int(request.seed),
            steps=int(request.steps),
            guidance=float(request.guidance),
            fps=float(request.fps),
            client=client,
            point_tracks=point_tracks,
        )
        submit.validate(_SENDABLE)
        return submit

    def validate(self, limits: Limits) -> None:
        """Raise `ProtocolError` naming the first field outside `limits`."""
        check_job_id(self.job_id)
        check_text("prompt", self.prompt, limits.max_prompt_chars, allow_empty=False)
        if self.negative_prompt is not None:
            check_text("negative_prompt", self.negative_prompt, limits.max_prompt_chars, allow_empty=True)
        check_text("client", self.client, limits.max_client_chars, allow_empty=True)
        if not 1 <= self.steps <= limits.max_steps:
            raise ProtocolError(f"steps is {self.steps}; use 1 to {limits.max_steps} (50 is the default)", "limit")
        if not 0 <= self.seed <= limits.max_seed:
            raise ProtocolError(f"seed is {self.seed}; use an integer from 0 to {limits.max_seed}", "limit")
        if not (math.isfinite(self.guidance) and 0.0 <= self.guidance <= limits.max_guidance):
            raise ProtocolError(
                f"guidance is {self.guidance}; use a number from 0 to {limits.max_guidance:g} (6.0 is usual)", "limit"
            )
        if not (math.isfinite(self.fps) and limits.min_fps <= self.fps <= limits.max_fps):
            raise ProtocolError(
                f"fps is {self.fps}; use a number from {limits.min_fps:g} to {limits.max_fps:g}", "limit"
            )
        limits.check_size("the reference image", self.image.height, self.image.width)
        if self.point_tracks is not None:
            if self.tracking:
                raise ProtocolError("a submit carries a tracking video or point tracks, not both", "bad_request")
            self.point_tracks.check(limits)
            return
        if not 1 <= len(self.tracking) <= limits.max_frames:
            raise ProtocolError(
                f"the tracking video has {len(self.tracking)} frames; this server takes 1 to "
                f"{limits.max_frames} (sample longer videos down, e.g. with das_core.tracking.video.sample_indices)",
                "limit",
            )
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
        """Decode the images (and point tracks) into a `JobRequest` (raises `ProtocolError` on corrupt data)."""
        tracks, visibility = self.point_tracks.decode() if self.point_tracks is not None else (None, None)
        return JobRequest(
            prompt=self.prompt,
            image=self.image.decode(),
            tracking=np.stack([frame.decode() for frame in self.tracking]) if self.tracking else None,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            job_id=self.job_id,
            fps=self.fps,
            point_tracks=tracks,
            visibility=visibility,
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
    """The server's answer to `hello`."""

    body: ServerInfo


@dataclass(frozen=True)
class Reply:
    """The answer to status (`ServerStatus` or `JobStatus`), list (`JobList`) and cancel (`CancelResult`)."""

    body: ReplyBody


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


@dataclass(frozen=True)
class DepthRequest:
    """Estimate the depth of `image` (uint8 [H, W, 3], an `EncodedImage` on the server side)."""

    image: Any = field(compare=False)


@dataclass(frozen=True)
class DepthResult:
    """A depth map at the image's size: z along the camera axis, in metres when `metric`, else up to scale."""

    depth: np.ndarray = field(compare=False)  # float32 [H, W]
    model: str
    metric: bool
    fov_deg: float | None = None  # horizontal field of view, when the model estimates one


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
    | DepthRequest
    | DepthResult
)
Event = Accepted | Progress | Frame | Done | JobFailed
