"""The jobs this Blender session runs, and the timer that applies their events on the main thread.

Job threads (`network_thread.JobThread`) post events to `OUTBOX`; `tick()` (a `bpy.app.timers` function, also called by
`das.generate(wait=True)`) drains it, updates each `Job`, adds the strips when a job is done and
redraws the DaS panels. Only this module and the operators change job state, always on the main
thread.

Generations are also remembered in the .blend (`scene.das.jobs`, one `DasJobRecord` each: job id,
server, sequencer scene, frame span, the shot's plan and frames setting, prompt, folder, state), kept
in step with each job's plan and state here, so that after Blender restarts `operators.reattach` can
follow the unfinished ones again and land the same strip.
Opening another file abandons this session's job threads (`forget_session`).
"""

from __future__ import annotations

import enum
import json
import queue
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bpy
import numpy as np

from das_core.tracking.shot import FRAMES_EVERY, ShotPlan
from das_core.wire.protocol import Accepted, Done, JobFailed, Progress

from . import sequencer
from .network_thread import (
    CancelFailed,
    ClientError,
    FrameSaved,
    Planned,
    RelayThread,
    SaveFailed,
    Sending,
    ShotReady,
    Submitted,
    TrackingReady,
)

OUTBOX: queue.Queue = queue.Queue()
TICK_INTERVAL_S = 0.1


class JobState(enum.StrEnum):
    """Where a job is. The values are what `DasJobRecord.state` keeps in the .blend: never change one."""

    RENDERING = "rendering"  # the tracking video is rendered in the job's thread first
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    OFFLINE = "offline"  # the server stopped answering after accepting it
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({JobState.RENDERING, JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})
# A job in none of these may still end on its server: an offline one is followed again by
# re-attaching, like the active states saved in a .blend.
FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass
class Job:
    """One generation (or tracking preview) as the add-on sees it: where its frames go, where its strip lands."""

    job_id: str
    scene_uid: int  # session_uid of the sequencer scene recorded at submit time (survives renames)
    prompt: str  # empty for a tracking preview
    frame_dir: Path
    frame_start: int  # timeline span the strip covers, every frame of it exported
    frame_end: int
    frames_setting: str = FRAMES_EVERY  # what the strip holds (`das_core.tracking.shot`): every or model
    plan: ShotPlan | None = None  # the keys and windows, once the job's thread has planned the shot
    add_tracking_strip: bool = True
    thread: RelayThread | None = None
    state: JobState = JobState.RENDERING
    phase: str = ""
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    queue_position: int = 0
    error: str = ""
    warnings: list[str] = field(default_factory=list)  # export warnings, reported when the job starts
    tracking_frames: list[Path] = field(default_factory=list)
    tracking_dir: Path | None = None  # a re-attached job's tracking PNGs, read when it is done
    frames: dict[int, Path] = field(default_factory=dict)  # the generated frames, one per key
    shot_frames: list[Path] = field(default_factory=list)  # every timeline frame (frames setting "every")
    strip_name: str = ""
    submitted_at: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def progress(self) -> float:
        """Fraction done, 0..1, for the panel's progress bar."""
        if self.state == JobState.DONE:
            return 1.0
        return self.step / self.total if self.total else 0.0

    @property
    def is_preview(self) -> bool:
        return not self.prompt

    @property
    def name(self) -> str:
        """Strip name: the start of the prompt plus the job id's first characters."""
        return f"{' '.join(self.prompt.split())[:40]} [{self.job_id[:8]}]"


JOBS: dict[str, Job] = {}
ERRORS: dict[int, str] = {}  # scene session_uid -> the last error that stopped a job from starting


def start(job: Job) -> None:
    """Track `job` and start its thread (unless already started); the timer runs while any job is active."""
    JOBS[job.job_id] = job
    if job.thread is not None and job.thread.ident is None:
        job.thread.start()
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TICK_INTERVAL_S, persistent=True)


def remember(job: Job, scene: bpy.types.Scene, server: str) -> None:
    """Record a submitted generation in `scene.das.jobs`, so the .blend can follow it again after a restart."""
    record = scene.das.jobs.add()
    record.job_id = job.job_id
    record.server = server
    record.sequencer_scene = next((item for item in bpy.data.scenes if item.session_uid == job.scene_uid), None)
    record.frame_start, record.frame_end = job.frame_start, job.frame_end
    record.frames = job.frames_setting
    record.shot_plan = plan_text(job.plan)
    record.prompt = job.prompt
    record.directory = str(job.frame_dir.parent)
    record.add_tracking_strip = job.add_tracking_strip
    record.state = job.state


def plan_text(plan: ShotPlan | None) -> str:
    """`plan` as the JSON `DasJobRecord.shot_plan` keeps (empty: not planned yet)."""
    return json.dumps(asdict(plan)) if plan is not None else ""


def plan_from_text(text: str) -> ShotPlan | None:
    """The plan `plan_text` wrote, or None for an empty one."""
    if not text:
        return None
    data = json.loads(text)
    return ShotPlan(data["num_frames"], tuple(data["keys"]), tuple(tuple(window) for window in data["windows"]))


def records() -> list[tuple[bpy.types.Scene, bpy.types.PropertyGroup]]:
    """Every remembered job of the open file, with the scene whose settings hold it."""
    return [(scene, record) for scene in bpy.data.scenes for record in scene.das.jobs]


def unfollowed(scene: bpy.types.Scene | None = None) -> list[bpy.types.PropertyGroup]:
    """Remembered jobs (of `scene`, or of every scene) that may still end on their server and nothing follows now."""
    return [
        record for owner, record in records()
        if (scene is None or owner == scene) and record.state not in FINAL_STATES
        and not (record.job_id in JOBS and JOBS[record.job_id].active)
    ]  # fmt: skip


def forget_session() -> None:
    """Drop this session's jobs (another file is being opened): their threads post nothing more."""
    for job in JOBS.values():
        if job.thread is not None:
            job.thread.abandon()
    JOBS.clear()
    ERRORS.clear()
    while True:
        try:
            OUTBOX.get_nowait()
        except queue.Empty:
            break


def stop_timer() -> None:
    """Unregister the timer (add-on disabled); running threads finish on their own, their events are dropped."""
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)


def latest(scene_uid: int | None = None) -> Job | None:
    """The most recently started job (of the scene with this session_uid, if given)."""
    candidates = [job for job in JOBS.values() if scene_uid is None or job.scene_uid == scene_uid]
    return max(candidates, key=lambda job: job.submitted_at, default=None)


def tick() -> bool:
    """Apply every pending event; returns True if any job changed. Main thread only."""
    changed = False
    while True:
        try:
            event = OUTBOX.get_nowait()
        except queue.Empty:
            break
        job = JOBS.get(event.job_id)
        if job is None:
            continue  # a job of an earlier session state (cleared or disabled add-on)
        state = job.state
        try:
            _apply(job, event)
        except Exception as error:  # a raising timer would be unregistered by Blender and freeze every job
            job.state, job.error = (
                JobState.FAILED,
                f"{type(error).__name__}: {error}; frames are in {job.frame_dir.parent}",
            )
        if job.state != state or isinstance(event, Planned):
            _save_record(job)
        changed = True
    if changed:
        redraw_panels()
    return changed


def _timer() -> float | None:
    tick()
    return TICK_INTERVAL_S if any(job.active for job in JOBS.values()) else None


def _save_record(job: Job) -> None:
    """Keep the job's record in the .blend in step with its state and plan (previews have none)."""
    for _scene, record in records():
        if record.job_id == job.job_id:
            record.state = job.state
            record.shot_plan = plan_text(job.plan)


def _apply(job: Job, event) -> None:
    if isinstance(event, Planned):
        job.plan = event.plan
    elif isinstance(event, TrackingReady):
        job.tracking_frames = event.paths
        if job.is_preview and _add_strips(job, [], event.paths):
            job.state = JobState.DONE
    elif isinstance(event, Sending):
        job.state = JobState.SUBMITTING if job.state == JobState.RENDERING else job.state
    elif isinstance(event, Submitted):
        job.state = JobState.QUEUED if job.state == JobState.SUBMITTING else job.state
    elif isinstance(event, Accepted):
        job.state, job.queue_position = JobState.QUEUED, event.position
    elif isinstance(event, Progress):
        job.state, job.phase, job.step, job.total, job.eta_s = (
            JobState.RUNNING,
            event.phase,
            event.step,
            event.total,
            event.eta_s,
        )
    elif isinstance(event, FrameSaved):
        job.frames[event.index] = event.path
    elif isinstance(event, ShotReady):
        job.shot_frames = event.paths
    elif isinstance(event, Done):
        _finish(job, event)
    elif isinstance(event, JobFailed):
        job.state = JobState.CANCELLED if event.code == "cancelled" else JobState.FAILED
        job.error = "" if job.state == JobState.CANCELLED else f"server: {event.message} ({event.code})"
    elif isinstance(event, ClientError):
        if job.active:  # a server that went quiet after accepting the job may still finish it
            waiting = job.state in (JobState.QUEUED, JobState.RUNNING)
            job.state = JobState.OFFLINE if event.offline and waiting else JobState.FAILED
        job.error = event.message
    elif isinstance(event, (CancelFailed, SaveFailed)):
        job.error = event.message


def _finish(job: Job, done: Done) -> None:
    """All frames are on disk (the job's thread saw each before `Done`, and wrote the shot's before it):
    add the generated strip and the tracking strip."""
    frames = job.shot_frames or [job.frames[index] for index in range(done.num_frames)]
    tracking = job.tracking_frames or _tracking_on_disk(job)
    if _add_strips(job, frames, tracking if job.add_tracking_strip else []):
        job.state, job.step = JobState.DONE, job.total


def _tracking_on_disk(job: Job) -> list[Path]:
    """The complete tracking strip in the job's tracking folder (an earlier session wrote it), else none."""
    directory = job.tracking_dir
    paths = sorted(directory.glob("frame_*.png")) if directory is not None else []
    return paths if len(paths) == len(job.plan.keys) else []


def _add_strips(job: Job, frames: list[Path], tracking_frames: list[Path]) -> bool:
    """The generated strip with the tracking strip above it (either may be absent), on free channels, one
    element per timeline frame of the shot: a frame of the shot's own (`frames` holds every timeline
    frame), or its key's frame, held (one image per key: the model's frames, the control)."""
    scene = next((scene for scene in bpy.data.scenes if scene.session_uid == job.scene_uid), None)
    if scene is None:
        job.state, job.error = (
            JobState.FAILED,
            f"the job's sequencer scene no longer exists; its frames are in {job.frame_dir.parent}",
        )
        return False
    plan = job.plan
    held = sequencer.timeline_elements(plan.keys, plan.num_frames)
    layers = [(job.name, frames), (f"tracking [{job.job_id[:8]}]", tracking_frames)]
    layers = [(name, images) for name, images in layers if images]
    channel = sequencer.free_channel(scene, job.frame_start, job.frame_end, len(layers))
    for offset, (name, images) in enumerate(layers):
        # Where the model makes every timeline frame (a scene at or below its frame rate) the two are the same.
        elements = np.arange(plan.num_frames) if len(images) == plan.num_frames else held
        strip = sequencer.add_image_sequence(
            scene, name, images, elements, channel=channel + offset, frame_start=job.frame_start
        )
        job.strip_name = job.strip_name or strip.name
    return True


def redraw_panels() -> None:
    """Redraw the areas showing DaS panels (none in background mode)."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR"}:
                area.tag_redraw()
