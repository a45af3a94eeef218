"""Talking to the DaS server without ever blocking Blender or touching bpy.

Each job gets a `JobThread` that owns its own `DasClient` (one thread per socket): it submits,
follows the job's events, writes each arriving frame as a PNG into the job's folder, and posts
every event to an outbox `queue.Queue`. Cancel runs in a short thread with a client of its own.
Nothing here imports bpy: a `bpy.app.timers` function (`jobs.tick`) drains the outbox on the main
thread.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from das_core.errors import DasError
from das_core.protocol import Done, Frame, JobFailed, JobRequest

FRAME_NAME = "frame_{:05d}.png"
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
class Submitted:
    """The server accepted the job (posted once `submit` returns)."""

    job_id: str


@dataclass(frozen=True)
class FrameSaved:
    """A generated frame is on disk at `path` (the image itself stays in the network thread)."""

    job_id: str
    index: int
    path: Path


@dataclass(frozen=True)
class ClientError:
    """The client failed (server unreachable, connection lost, bad reply): one readable message."""

    job_id: str
    message: str


@dataclass(frozen=True)
class CancelSent:
    """The server acknowledged a cancel request (the job then ends with a JobFailed)."""

    job_id: str


class JobThread(threading.Thread):
    """Submit one job and relay its events to `outbox` as (job_id, event) pairs; daemon, never touches bpy."""

    def __init__(self, connection: Connection, request: JobRequest, frame_dir: Path, outbox: queue.Queue) -> None:
        super().__init__(name=f"das-job-{request.job_id}", daemon=True)
        self.connection = connection
        self.request = request
        self.frame_dir = Path(frame_dir)
        self.outbox = outbox
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop following the job after the next event (the server keeps it; `fetch` can resume it)."""
        self._stop.set()

    def run(self) -> None:
        job_id = self.request.job_id
        try:
            with self.connection.client() as client:
                client.submit(self.request)
                self.outbox.put(Submitted(job_id))
                # A live server answers the client's re-subscription (after 5 s of quiet) at once, so
                # silence longer than this means the server went away.
                for event in client.events(job_id, timeout=self.connection.timeout + SILENCE_MARGIN_S):
                    if isinstance(event, Frame):
                        event = FrameSaved(job_id, event.index, _write_png(self.frame_dir, event.index, event.image))
                    self.outbox.put(event)
                    if isinstance(event, (Done, JobFailed)) or self._stop.is_set():
                        return
                self.outbox.put(ClientError(job_id, "the server ended the job's event stream without a result"))
        except DasError as error:
            self.outbox.put(ClientError(job_id, str(error)))
        except Exception as error:  # a bug must still reach the artist, not die silently in a thread
            self.outbox.put(ClientError(job_id, f"unexpected {type(error).__name__}: {error}"))


def cancel_in_background(connection: Connection, job_id: str, outbox: queue.Queue) -> threading.Thread:
    """Send a cancel for `job_id` from a short-lived thread with its own client; the result goes to `outbox`."""

    def run() -> None:
        try:
            with connection.client() as client:
                client.cancel(job_id)
            outbox.put(CancelSent(job_id))
        except DasError as error:
            outbox.put(ClientError(job_id, f"cancel failed: {error}"))

    thread = threading.Thread(target=run, name=f"das-cancel-{job_id}", daemon=True)
    thread.start()
    return thread


def _write_png(directory: Path, index: int, image: np.ndarray) -> Path:
    """Write one frame losslessly (Pillow ships in the extension's wheels; Blender reads PNG natively)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FRAME_NAME.format(index)
    partial = path.with_suffix(".part")
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(partial, format="PNG", compress_level=1)
    partial.replace(path)  # the sequencer never sees a half-written file
    return path
