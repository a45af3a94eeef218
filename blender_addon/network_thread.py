"""A job's background work, off Blender's main thread and never touching bpy.

Each job gets a thread that owns its own `DasClient` (one thread per socket), follows the job's
events, writes each arriving frame as a PNG into the job's folder, and posts every event to an
outbox `queue.Queue`; a `bpy.app.timers` function (`jobs.tick`) drains it on the main thread.

- `JobThread` (Generate, Preview): asks the server what its model runs (`info`), plans the shot at the
  model's frame rate from the tracks of every timeline frame (`das_core.tracking.shot.plan_shot`: the
  keys, in windows), makes each window's control (the tracking video, or point tracks; pure numpy),
  submits them, and only then writes the control's PNGs (the tracking video, or the point tracks drawn
  on the reference) and the tracks file (in a helper thread, while the server starts the job), so
  nothing on disk stands between Generate and the first progress. A preview plans for `window` and
  makes its control without a server.
- `ReattachThread`: follows a job submitted in an earlier Blender session (`DasClient.fetch`
  replays its events from the first frame and waits if it is unfinished).

The arriving frames (one per key) stay in `frames/`, so a job can be fetched again. Once the job is
done and the frames setting is "every", the thread makes every timeline frame of the shot from them and
the exact motion (`das_core.tracking.shot.scene_frames`) and writes it to `shot/`, posting progress
(Cancel stops it); with "model" the strip holds the keys' frames from `frames/` instead.

A Cancel pressed while the job is on the wire goes out at once from a short thread with a client
of its own. A thread whose file was closed is `abandon`ed: it posts nothing more.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from das_core.errors import DasError, plural
from das_core.tracking.shot import FRAMES_EVERY, ShotControl, ShotPlan, plan_shot, scene_frames
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import fit_frames
from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.client import JobFailedError, collect_frames
from das_core.wire.protocol import Event, Frame, JobFailed, JobRequest, Progress

from . import server_info
from .tracking_video import write_tracking_video

FRAME_NAME = "frame_{:05d}.png"
SHOT_DIR = "shot"  # next to frames/: every timeline frame of a finished shot
INBETWEEN_PHASE = "in-betweening"
# How the images travel: lossless zlib encodes the mostly black tracking video about twice as fast
# as PNG (~0.1 s for 49 frames of 720x480) and stays small (~3 MB); see tests/benchmarks/RESULTS.md.
WIRE_CODEC = "zlib"


@dataclass(frozen=True)
class Connection:
    """Where the server is and how to reach it (the CURVE keys are empty for loopback servers)."""

    address: str
    timeout: float = 10.0
    server_public_key: str = ""
    client_secret_key: str = ""
    client_public_key: str = ""

    def client(self):
        """A new `DasClient`; call only from the thread that will use it."""
        from das_core.wire.client import DasClient

        return DasClient(
            self.address,
            timeout=self.timeout,
            server_public_key=self.server_public_key.encode() or None,
            client_secret_key=self.client_secret_key.encode() or None,
            client_public_key=self.client_public_key.encode() or None,
        )


@dataclass(frozen=True)
class Planned:
    """The shot is planned at the model's frame rate: `plan.keys` are the timeline indices the model makes."""

    job_id: str
    plan: ShotPlan


@dataclass(frozen=True)
class ShotReady:
    """Every timeline frame of the finished shot is on disk at `paths` (posted just before `Done`)."""

    job_id: str
    paths: list[Path]


@dataclass(frozen=True)
class TrackingReady:
    """The tracking video (and the tracks file) are on disk (a preview job ends here)."""

    job_id: str
    paths: list[Path]


@dataclass(frozen=True)
class Sending:
    """The tracking video and the reference image are ready; the job is going to the server."""

    job_id: str


@dataclass(frozen=True)
class Submitted:
    """The server accepted the job (posted once `submit` returns)."""

    job_id: str


@dataclass(frozen=True)
class FrameSaved:
    """A generated frame is on disk at `path` (the image itself stays in the background thread)."""

    job_id: str
    index: int
    path: Path


@dataclass(frozen=True)
class ClientError:
    """The job cannot go on (server unreachable, connection lost, bad reply): one readable message.

    `offline` is True when the server stopped answering: the job may still finish there, and
    re-attaching later (`bpy.ops.das.reattach`, or reopening the file) picks it up.
    """

    job_id: str
    message: str
    offline: bool = False


@dataclass(frozen=True)
class SaveFailed:
    """The job's inputs could not be written to disk (the job itself goes on, without a tracking strip)."""

    job_id: str
    message: str


@dataclass(frozen=True)
class CancelFailed:
    """A cancel request did not reach the server; the job itself may still end normally."""

    job_id: str
    message: str


class RelayThread(threading.Thread):
    """What both job threads share: posting (unless abandoned), cancel requests, relaying events, and making
    the shot's timeline frames from the generated ones for `plan` (`frames_setting`: every or model)."""

    def __init__(
        self,
        job_id: str,
        outbox: queue.Queue,
        connection: Connection | None,
        frame_dir: Path | None,
        *,
        frames_setting: str = FRAMES_EVERY,
        plan: ShotPlan | None = None,
    ) -> None:
        super().__init__(name=f"das-job-{job_id}", daemon=True)
        self.job_id = job_id
        self.outbox = outbox
        self.connection = connection
        self.frame_dir = Path(frame_dir) if frame_dir else None
        self.frames_setting = frames_setting
        self.plan = plan
        self._cancelled = threading.Event()
        self._abandoned = threading.Event()
        self._post_lock = threading.Lock()

    def request_cancel(self) -> None:
        """Cancel from any thread: before submitting the job is dropped; after, the server is told."""
        self._cancelled.set()

    def abandon(self) -> None:
        """Post nothing more (the file this job belongs to was closed); the server's job goes on."""
        with self._post_lock:
            self._abandoned.set()

    def run(self) -> None:
        from das_core.wire.client import ServerUnavailable

        try:
            self._work()
        except ServerUnavailable as error:
            self._post(ClientError(self.job_id, str(error), offline=True))
        except DasError as error:
            self._post(ClientError(self.job_id, str(error)))
        except Exception as error:  # a bug must still reach the artist, not die silently in a thread
            self._post(ClientError(self.job_id, f"unexpected {type(error).__name__}: {error}"))

    def _work(self) -> None:
        raise NotImplementedError

    def _tracks(self) -> Tracks:
        """The shot's tracks, every timeline frame (for the in-betweens)."""
        raise NotImplementedError

    def _post(self, event: object) -> None:
        with self._post_lock:
            if not self._abandoned.is_set():
                self.outbox.put(event)

    def _relay(self, events) -> None:
        """Post each event (frames written to disk first) until the job ends, then make the shot's frames
        and post its `Done`, or post its `JobFailed`."""
        try:
            result = collect_frames(self._until_abandoned(events), on_event=self._relay_one)
        except JobFailedError as error:
            self._before_end()
            self._post(error.failure)
            return
        self._before_end()
        if self._make_shot(result.frames):
            self._post(result.done)

    def _make_shot(self, generated: np.ndarray) -> bool:
        """With `frames_setting` "every", write every timeline frame of the shot to shot/, posting progress (the keys'
        frames are held otherwise). False when cancelled or abandoned meanwhile."""
        plan = self.plan
        if len(generated) != len(plan.keys):
            raise DasError(
                f"the server made {plural(len(generated), 'frame')} but this shot has {len(plan.keys)} model "
                f"frames, and one per model frame was expected (a server older than whole shots returns its "
                f"window's frames: update it); its frames are in {self.frame_dir}"
            )
        if self.frames_setting != FRAMES_EVERY:
            return True
        directory, paths, started = self.frame_dir.parent / SHOT_DIR, [], time.monotonic()
        keys = {key: index for index, key in enumerate(plan.keys)}
        # One frame is written (PNG's zlib runs without the GIL) while the next is made.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"das-shot-{self.job_id}") as writer:
            pending: Future | None = None
            for index, frame in enumerate(scene_frames(self._tracks(), plan, generated, FRAMES_EVERY)):
                if self._abandoned.is_set():
                    return False
                if self._cancelled.is_set():
                    self._post(JobFailed(self.job_id, "cancelled", "cancelled while in-betweening"))
                    return False
                written = writer.submit(self._write_shot_frame, directory, index, frame, keys.get(index))
                if pending is not None:
                    paths.append(pending.result())
                    self._shot_progress(len(paths), started)
                pending = written
            paths.append(pending.result())
            self._shot_progress(len(paths), started)
        self._post(ShotReady(self.job_id, paths))
        return True

    def _write_shot_frame(self, directory: Path, index: int, frame: np.ndarray, key: int | None) -> Path:
        """Timeline frame `index` into `directory`; a key's frame is a copy of its PNG in frames/ (the same pixels)."""
        source = None if key is None else self.frame_dir / FRAME_NAME.format(key)
        if source is None or not source.is_file():
            return _write_png(directory, index, frame)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FRAME_NAME.format(index)
        partial = path.with_name(f"{path.name}.{threading.get_ident()}.part")
        shutil.copyfile(source, partial)
        partial.replace(path)
        return path

    def _shot_progress(self, done: int, started: float) -> None:
        total = self.plan.num_frames
        self._post(
            Progress(self.job_id, INBETWEEN_PHASE, done, total, (time.monotonic() - started) / done * (total - done))
        )

    def _until_abandoned(self, events):
        """The events, cut short once the thread is abandoned (the stream then ends without a result)."""
        for event in events:
            if self._abandoned.is_set():
                return
            yield event

    def _relay_one(self, event: Event) -> None:
        posted: object = event
        if isinstance(event, Frame):
            posted = FrameSaved(self.job_id, event.index, _write_png(self.frame_dir, event.index, event.image))
        self._post(posted)
        self._after(posted)

    def _after(self, event: object) -> None:
        """Called after each event but the last is posted."""

    def _before_end(self) -> None:
        """Called before the job's last event (`Done`, `JobFailed`) is posted."""


class JobThread(RelayThread):
    """Plan the shot and make its control, then (with a `request`) submit it and relay the job's events to `outbox`.

    `tracks` hold every timeline frame of the shot. With a `request` the plan and the control are for the
    window the server's `info` names (and the request's image is letterboxed to its size). Without a
    request, they are `window`'s. `tracks_path`, if given, is where the tracks are saved after sending.
    The tracking PNGs and the tracks file are written by a helper thread that starts once the server
    reports progress (so it does not compete with the server for the CPU before that), and is done
    before the shot's frames are made (the tracking strip needs the PNGs).
    """

    def __init__(
        self,
        job_id: str,
        tracks: Tracks,
        mode: str,
        tracking_dir: Path,
        outbox: queue.Queue,
        *,
        connection: Connection | None = None,
        request: JobRequest | None = None,
        frame_dir: Path | None = None,
        tracks_path: Path | None = None,
        window: ModelWindow = DAS_WINDOW,
        frames_setting: str = FRAMES_EVERY,
    ) -> None:
        super().__init__(job_id, outbox, connection, frame_dir, frames_setting=frames_setting)
        self.window = window
        self.tracks = tracks
        self.mode = mode
        self.tracking_dir = Path(tracking_dir)
        self.request = request
        self.tracks_path = Path(tracks_path) if tracks_path else None
        self._writer: threading.Thread | None = None

    def _tracks(self) -> Tracks:
        return self.tracks

    def _work(self) -> None:
        if self.request is None:
            self._save_inputs(self._plan(self.window).preview())
            return
        with self.connection.client() as client:
            try:
                info = None if self._cancelled.is_set() else client.info()
            except DasError:
                if not self._cancelled.is_set():
                    raise
                info = None  # cancelled while asking: the job never left, whatever the server did
            if info is None:
                self._post(JobFailed(self.job_id, "cancelled", "cancelled before it was sent"))
                return
            server_info.remember(self.connection.address, info)
            window = info.window
            shot = self._plan(window)
            image = fit_frames(self.request.image, *window.size, resample="bilinear")
            frames = shot.preview(image)
            if self._cancelled.is_set():
                self._post(JobFailed(self.job_id, "cancelled", "cancelled before it was sent"))
                return
            self._post(Sending(self.job_id))
            request = replace(self.request, image=image, job_id=self.job_id, fps=window.fps, **shot.job_fields())
            client.submit(request, codec=WIRE_CODEC)
            self._post(Submitted(self.job_id))
            self._writer = threading.Thread(
                target=self._save_inputs, args=(frames,), name=f"das-save-{self.job_id}", daemon=True
            )
            try:
                if self._cancelled.is_set():  # pressed while submitting: the operator could not know the server had it
                    client.cancel(self.job_id)
                self._relay(client.events(self.job_id))  # raises ServerStopped once the server goes quiet
            finally:
                self._before_end()  # however the job ends, its inputs end up on disk

    def _plan(self, window: ModelWindow) -> ShotControl:
        """Plan the shot at `window`'s frame rate (posted, for the strips and the file's record) and make its control."""
        self.plan = plan_shot(self.tracks.num_frames, self.tracks.fps, window)
        self._post(Planned(self.job_id, self.plan))
        return ShotControl.prepare(self.tracks, self.plan, window, self.mode)

    def _after(self, event: object) -> None:
        if isinstance(event, Progress) and self._writer.ident is None:
            self._writer.start()

    def _before_end(self) -> None:
        if self._writer.ident is None:
            self._writer.start()
        self._writer.join()

    def _save_inputs(self, frames: np.ndarray) -> None:
        """Write the control's PNGs and the tracks file (for `das render-tracking`), then post `TrackingReady`."""
        try:
            paths = write_tracking_video(frames, self.tracking_dir)
            if self.tracks_path is not None:
                self.tracks.save(self.tracks_path)
        except (DasError, OSError) as error:
            self._post(SaveFailed(self.job_id, f"could not write the tracking video to {self.tracking_dir}: {error}"))
            return
        self._post(TrackingReady(self.job_id, paths))


class ReattachThread(RelayThread):
    """Follow a job the server already has (submitted before Blender was closed): replay and relay its events.

    The shot's tracks are read from `tracks_path` (the job's tracks.npz) when the in-betweens need them,
    and the shot is planned again from them and the server's `info` if the file was saved before its
    plan was made.
    """

    def __init__(
        self,
        job_id: str,
        outbox: queue.Queue,
        connection: Connection,
        frame_dir: Path,
        *,
        tracks_path: Path,
        frames_setting: str = FRAMES_EVERY,
        plan: ShotPlan | None = None,
    ) -> None:
        super().__init__(job_id, outbox, connection, frame_dir, frames_setting=frames_setting, plan=plan)
        self.tracks_path = Path(tracks_path)
        self._loaded: Tracks | None = None

    def _tracks(self) -> Tracks:
        if self._loaded is None:
            try:
                self._loaded = Tracks.load(self.tracks_path)
            except (DasError, OSError) as error:
                raise DasError(
                    f"cannot make the shot's frames of job {self.job_id[:8]}: its tracks file cannot be read "
                    f"({error}); the model's frames are in {self.frame_dir}"
                ) from None
        return self._loaded

    def _work(self) -> None:
        from das_core.wire.client import ServerError

        with self.connection.client() as client:
            try:
                client.status(self.job_id)  # a server that is down or lost the job says so within the timeout
                if self.plan is None:
                    self.plan = plan_shot(self._tracks().num_frames, self._tracks().fps, client.info().window)
                    self._post(Planned(self.job_id, self.plan))
                self._relay(client.fetch(self.job_id))
            except ServerError as error:
                if error.code != "unknown_job":
                    raise
                raise DasError(
                    f"the server at {self.connection.address} no longer knows job {self.job_id[:8]} (finished jobs "
                    f"are kept for a limited time, or this is another server); frames received earlier are in "
                    f"{self.frame_dir}"
                ) from None


def cancel_in_background(connection: Connection, job_id: str, outbox: queue.Queue) -> threading.Thread:
    """Send a cancel for `job_id` from a short-lived thread with its own client; failures go to `outbox`."""

    def run() -> None:
        try:
            with connection.client() as client:
                client.cancel(job_id)
        except DasError as error:
            outbox.put(CancelFailed(job_id, f"cancel failed: {error}"))

    thread = threading.Thread(target=run, name=f"das-cancel-{job_id}", daemon=True)
    thread.start()
    return thread


def _write_png(directory: Path, index: int, image: np.ndarray) -> Path:
    """Write one frame losslessly (Pillow ships in the extension's wheels; Blender reads PNG natively).

    A file already there with the same pixels (written before Blender was closed) is kept.
    """
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FRAME_NAME.format(index)
    image = np.asarray(image, dtype=np.uint8)
    if path.is_file() and _same_pixels(path, image):
        return path
    partial = path.with_name(f"{path.name}.{threading.get_ident()}.part")  # an abandoned thread may still be writing
    Image.fromarray(image, "RGB").save(partial, format="PNG", compress_level=1)
    partial.replace(path)  # the sequencer never sees a half-written file
    return path


def _same_pixels(path: Path, image: np.ndarray) -> bool:
    """True if the PNG at `path` holds exactly `image` (False if it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as existing:
            return existing.size == (image.shape[1], image.shape[0]) and np.array_equal(
                np.asarray(existing.convert("RGB")), image
            )
    except OSError:
        return False
