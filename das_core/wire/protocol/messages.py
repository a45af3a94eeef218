"""The message dataclasses: one per message type, with `JobRequest` (a job as arrays) and its wire form `Submit`."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from das_core.tracking.window import DAS_WINDOW, POINT_TRACKS, TRACKING_VIDEO, WAN_MOVE_WINDOW
from das_core.wire.protocol.bodies import ReplyBody, ServerInfo
from das_core.wire.protocol.images import EncodedImage
from das_core.wire.protocol.limits import Limits, ProtocolError, check_job_id, check_text
from das_core.wire.protocol.point_tracks import EncodedPointTracks

# What a client checks before sending: the most frames any model takes per window, in the default number
# of windows (the server checks its own limits).
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

    @property
    def control_frames(self) -> int:
        """Frames of its control, all windows together."""
        control = self.point_tracks if self.point_tracks is not None else self.tracking
        return 0 if control is None else len(control)

    @property
    def window_lengths(self) -> tuple[int, ...]:
        """Control frames per window: `windows`, or all of them as one window."""
        return tuple(self.windows) if self.windows is not None else (self.control_frames,)

    @property
    def window_count(self) -> int:
        return len(self.window_lengths)

    def window(self, index: int, image: np.ndarray) -> JobRequest:
        """Window `index` as a job of one window: its slice of the control, `image` as its reference
        (window k + 1 starts from window k's last generated frame), `windows` None.

        Point tracks keep only the points visible in some frame of the window: a client pads every
        window to one point count with the other windows' points, invisible throughout.
        """
        lengths = self.window_lengths
        if not 0 <= index < len(lengths):
            raise ProtocolError(f"window {index} does not exist; this job has {len(lengths)} (0 to {len(lengths) - 1})")
        start = sum(lengths[:index])
        frames = slice(start, start + lengths[index])
        if self.point_tracks is None:
            return replace(self, image=image, tracking=self.tracking_video()[frames], windows=None)
        tracks, visibility = self.tracks_and_visibility()
        tracks, visibility = tracks[frames], visibility[frames]
        kept = visibility.any(axis=0)
        return replace(self, image=image, point_tracks=tracks[:, kept], visibility=visibility[:, kept], windows=None)


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
    windows: tuple[int, ...] | None = None  # as `JobRequest.windows`

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
            # zlib and PNG encode without the GIL, so the frames are encoded two at a time.
            with ThreadPoolExecutor(max_workers=2) as pool:
                tracking = tuple(pool.map(lambda frame: EncodedImage.encode(frame, codec), video))
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
            windows=_whole_numbers(request.windows),
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
            self._check_windows(limits)
            return
        self._check_windows(limits)
        first = self.tracking[0]
        limits.check_size("the tracking video", first.height, first.width)
        for index, frame in enumerate(self.tracking):
            if (frame.height, frame.width) != (first.height, first.width):
                raise ProtocolError(
                    f"tracking frame {index} is {frame.width}x{frame.height}, frame 0 is "
                    f"{first.width}x{first.height}; all frames must have one size",
                    "bad_request",
                )

    def _check_windows(self, limits: Limits) -> None:
        """Raise `ProtocolError` unless the control's frames fit one window, or `windows` splits them into
        at most `max_windows` windows of 2 to `max_frames` frames each."""
        what = "point tracks" if self.point_tracks is not None else "tracking video"
        frames = self.control_frames
        if self.windows is None:
            if not 1 <= frames <= limits.max_frames:
                raise ProtocolError(
                    f"the {what} has {frames} frames; this server takes 1 to {limits.max_frames} in one window "
                    "(sample it to the frames the server's info names, or split the shot into windows: "
                    "das_core.tracking.shot.plan_shot)",
                    "limit",
                )
            return
        count = len(self.windows)
        if count < 2:
            raise ProtocolError(
                "windows lists one window; a job of one window sends no windows (leave the field out)", "bad_request"
            )
        if count > limits.max_windows:
            raise ProtocolError(
                f"the job has {count} windows; this server runs at most {limits.max_windows} per job (split the "
                "shot into several jobs, or start the server with a larger --max-windows)",
                "limit",
            )
        for index, length in enumerate(self.windows):
            if not 2 <= length <= limits.max_frames:
                raise ProtocolError(
                    f"window {index} has {length} frames; each window of a job of several takes 2 to "
                    f"{limits.max_frames} (consecutive windows share a frame; plan them with "
                    "das_core.tracking.shot.plan_shot for the server's window)",
                    "limit",
                )
        if sum(self.windows) != frames:
            raise ProtocolError(
                f"the windows add up to {sum(self.windows)} frames but the {what} has {frames}; list each window's "
                "frames in order, a shared frame counted in both windows",
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
            windows=self.windows,
        )


def _whole_numbers(windows: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """`JobRequest.windows` as a tuple of ints; a `ProtocolError` for anything that is not whole numbers."""
    if windows is None:
        return None
    lengths = tuple(windows)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in lengths):
        raise ProtocolError(f"windows must be whole numbers of frames, got {list(lengths)[:20]}", "bad_request")
    return tuple(int(n) for n in lengths)


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
