"""A job's background work, off Blender's main thread and never touching bpy.

Each job gets a `JobThread`: it renders the tracking video from the exported tracks (pure numpy),
then, unless the job is only a preview, owns its own `DasClient` (one thread per socket), submits,
follows the job's events, writes each arriving frame as a PNG into the job's folder, and posts
every event to an outbox `queue.Queue`. A Cancel pressed while the job is on the wire goes out at
once from a short thread with a client of its own. A `bpy.app.timers` function (`jobs.tick`) drains
the outbox on the main thread.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from das_core.errors import DasError
from das_core.protocol import Done, Frame, JobFailed, JobRequest
from das_core.tracks import Tracks

from .tracking_video import render_tracking_video

FRAME_NAME = "frame_{:05d}.png"
# The client asks again after 5 s of quiet and a live server answers at once, so silence longer
# than the connection timeout plus this margin means the server went away.
SILENCE_MARGIN_S = 5.0


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
        from das_core.client import DasClient

        return DasClient(
            self.address,
            timeout=self.timeout,
            server_public_key=self.server_public_key.encode() or None,
            client_secret_key=self.client_secret_key.encode() or None,
            client_public_key=self.client_public_key.encode() or None,
        )


@dataclass(frozen=True)
class TrackingReady:
    """The tracking video is rendered and on disk (a preview job ends here)."""

    job_id: str
    paths: list[Path]


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
    """The job cannot go on (server unreachable, connection lost, bad reply): one readable message."""

    job_id: str
    message: str


@dataclass(frozen=True)
class CancelFailed:
    """A cancel request did not reach the server; the job itself may still end normally."""

    job_id: str
    message: str


class JobThread(threading.Thread):
    """Render the tracking video, then (with a `request`) submit it and relay the job's events to `outbox`."""

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
    ) -> None:
        super().__init__(name=f"das-job-{job_id}", daemon=True)
        self.job_id = job_id
        self.tracks = tracks
        self.mode = mode
        self.tracking_dir = Path(tracking_dir)
        self.outbox = outbox
        self.connection = connection
        self.request = request
        self.frame_dir = Path(frame_dir) if frame_dir else None
        self._cancelled = threading.Event()

    def request_cancel(self) -> None:
        """Cancel from any thread: before submitting the job is dropped; after, the server is told."""
        self._cancelled.set()

    def run(self) -> None:
        try:
            frames, paths = render_tracking_video(self.tracks, self.mode, self.tracking_dir)
            self.outbox.put(TrackingReady(self.job_id, paths))
            if self.request is None:
                return
            if self._cancelled.is_set():
                self.outbox.put(JobFailed(self.job_id, "cancelled", "cancelled before it was sent"))
                return
            self._follow(replace(self.request, tracking=frames, job_id=self.job_id))
        except DasError as error:
            self.outbox.put(ClientError(self.job_id, str(error)))
        except Exception as error:  # a bug must still reach the artist, not die silently in a thread
            self.outbox.put(ClientError(self.job_id, f"unexpected {type(error).__name__}: {error}"))

    def _follow(self, request: JobRequest) -> None:
        with self.connection.client() as client:
            client.submit(request)
            self.outbox.put(Submitted(self.job_id))
            if self._cancelled.is_set():  # pressed while submitting: the operator could not know the server had it
                client.cancel(self.job_id)
            for event in client.events(self.job_id, timeout=self.connection.timeout + SILENCE_MARGIN_S):
                if isinstance(event, Frame):
                    event = FrameSaved(self.job_id, event.index, _write_png(self.frame_dir, event.index, event.image))
                self.outbox.put(event)
                if isinstance(event, (Done, JobFailed)):
                    return
        self.outbox.put(ClientError(self.job_id, "the server ended the job's event stream without a result"))


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
    """Write one frame losslessly (Pillow ships in the extension's wheels; Blender reads PNG natively)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FRAME_NAME.format(index)
    partial = path.with_name(path.name + ".part")
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(partial, format="PNG", compress_level=1)
    partial.replace(path)  # the sequencer never sees a half-written file
    return path
