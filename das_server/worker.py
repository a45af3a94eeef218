"""The worker thread: owns the backend (the model), runs one job at a time, in fair order.

It never touches the server's socket. Each event (started, progress, frame, done, failed) goes
into `events` (a `queue.Queue`) and a one-byte nudge on an inproc PUSH socket wakes the server
thread, which forwards it to the job's clients. Frames are encoded once (in a small thread pool,
in order), written to the job store, then forwarded, so a later fetch sends the same bytes.
`Runner` is what the server needs from whatever runs its jobs: this thread, or a pool of remote
workers (`das_server.cluster`), which shares `Control`, `Emitter`, `encoded_frames` and `failure`;
both run a job's windows through `das_server.windows.WindowedJob`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import zmq

from das_core.errors import DasError
from das_core.tracking.window import ModelWindow
from das_core.wire.protocol import (
    Done,
    EncodedImage,
    Event,
    Frame,
    JobFailed,
    Limits,
    Progress,
    WorkerStatus,
    frame_digest,
    result_checksum,
)
from das_server.backends import Backend
from das_server.job_store import JobStore
from das_server.windows import WindowedJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """A job left the queue; the server tells waiting clients their new positions."""

    job_id: str


@dataclass(frozen=True)
class Stored:
    """A finished job's frames are on disk and its row says done (`Done` went out just before)."""

    job_id: str


WorkerEvent = Started | Stored | Event


class Runner(Protocol):
    """What runs the server's jobs: `Worker` in this process, or a pool of workers elsewhere."""

    events: queue.Queue[WorkerEvent]
    backend_name: str
    window: ModelWindow  # the control, size, frames and fps its backend takes

    def describe(self) -> dict: ...

    def workers(self) -> tuple[WorkerStatus, ...] | None:
        """Each worker's state; None when this process runs the jobs itself (one at a time)."""
        ...

    def start(self) -> None: ...

    def enqueue(self, job_id: str) -> None: ...

    def cancel_running(self, job_id: str) -> bool: ...

    def shutdown(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


RunnerFactory = Callable[[zmq.Context, str, JobStore], Runner]  # (context, wake address, store)


class Control:
    """Progress with ETA, and the stop flag, for one running job."""

    def __init__(self, job_id: str, emit: Callable[[Progress], None]) -> None:
        self.job_id = job_id
        self.emit = emit
        self.started = time.monotonic()
        self.stop = threading.Event()

    def progress(self, phase: str, step: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / step * (total - step) if step > 0 and total >= step else None
        self.emit(Progress(self.job_id, phase, int(step), int(total), eta))

    def should_stop(self) -> bool:
        return self.stop.is_set()


class Emitter:
    """Hands events to the server thread and wakes it. Open it in the thread that emits: its
    PUSH socket belongs to that thread."""

    def __init__(self, context: zmq.Context, wake_address: str, events: queue.Queue[WorkerEvent]) -> None:
        self.context = context
        self.wake_address = wake_address
        self.events = events
        self._wake: zmq.Socket | None = None

    def open(self) -> None:
        self._wake = self.context.socket(zmq.PUSH)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.setsockopt(zmq.SNDHWM, 16)
        self._wake.connect(self.wake_address)

    def close(self) -> None:
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    def emit(self, event: WorkerEvent) -> None:
        if self._wake is None:
            raise RuntimeError("Emitter.emit is called on the thread that opened it, between open() and close()")
        self.events.put(event)
        try:
            self._wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the server is already awake with nudges queued
            pass


def encoded_frames(
    frames: Iterable[np.ndarray], codec: str, encoder: ThreadPoolExecutor
) -> Iterator[tuple[int, EncodedImage, bytes]]:
    """Yield each of a job's frames' index, its encoding (made in `encoder`, kept in order) and digest."""
    pending: deque[tuple[int, np.ndarray, Future[EncodedImage]]] = deque()
    for index, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        pending.append((index, frame, encoder.submit(EncodedImage.encode, frame, codec)))
        while pending and pending[0][2].done():
            index, frame, future = pending.popleft()
            yield index, future.result(), frame_digest(frame)
    while pending:
        index, frame, future = pending.popleft()
        yield index, future.result(), frame_digest(frame)


def failure(error: Exception) -> tuple[str, str]:
    """A job's failure code and message for an exception its backend raised."""
    if isinstance(error, DasError):
        return "bad_input", str(error)
    hint = " (out of GPU memory: restart the server with --offload model)" if "out of memory" in str(error) else ""
    return "backend_error", f"{type(error).__name__}: {error}"[:500] + hint


class Worker(threading.Thread):
    """Runs queued jobs through the backend and reports what happens."""

    def __init__(
        self,
        context: zmq.Context,
        wake_address: str,
        store: JobStore,
        backend: Backend,
        limits: Limits,
        result_codec: str,
    ) -> None:
        super().__init__(name="das-worker", daemon=True)
        self.store = store
        self.backend = backend
        self.backend_name = backend.name
        self.window = backend.window
        self.limits = limits
        self.result_codec = result_codec
        self.jobs: queue.Queue[str | None] = queue.Queue()  # one entry per queued job; None stops the thread
        self.events: queue.Queue[WorkerEvent] = queue.Queue()
        self._emitter = Emitter(context, wake_address, self.events)
        self._lock = threading.Lock()
        self._running: Control | None = None
        self._shutting_down = False

    # -- called from the server thread --------------------------------------------------------

    def describe(self) -> dict:
        return self.backend.describe()

    def workers(self) -> None:
        return None

    def enqueue(self, job_id: str) -> None:
        """A job was queued: the thread takes the next job in fair order, which need not be this one."""
        self.jobs.put(job_id)

    def cancel_running(self, job_id: str) -> bool:
        """Ask the running job to stop if it is `job_id`; True if it was running."""
        with self._lock:
            if self._running is not None and self._running.job_id == job_id:
                self._running.stop.set()
                return True
        return False

    def shutdown(self) -> None:
        """Stop after the current step; an interrupted job goes back to the queue for next start."""
        with self._lock:
            self._shutting_down = True
            if self._running is not None:
                self._running.stop.set()
        self.jobs.put(None)

    # -- the worker thread --------------------------------------------------------------------

    def emit(self, event: WorkerEvent) -> None:
        """Hand `event` to the server thread and wake it; only from the worker thread, inside `run`."""
        self._emitter.emit(event)

    def run(self) -> None:
        self._emitter.open()
        encoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="das-encode")
        try:
            while self.jobs.get() is not None:
                job_id = self.store.claim_next()
                if job_id is None:
                    continue  # its job was cancelled while queued, or ran already
                control = Control(job_id, self.emit)
                with self._lock:
                    self._running = control
                    if self._shutting_down:
                        control.stop.set()
                try:
                    self._run(job_id, control, encoder)
                finally:
                    with self._lock:
                        self._running = None
        finally:
            encoder.shutdown(wait=True)
            self._emitter.close()

    def _run(self, job_id: str, control: Control, encoder: ThreadPoolExecutor) -> None:
        self.emit(Started(job_id))
        logger.info("job %s started", job_id)
        digests: list[bytes] = []
        last: EncodedImage | None = None
        try:
            request = self.store.load_submit(job_id, self.limits).to_request()
            job = WindowedJob(self.backend, request, control)
            for index, encoded, digest in encoded_frames(job.frames(), self.result_codec, encoder):
                digests.append(digest)
                self.store.add_frame(job_id, index, encoded)
                self.emit(Frame(job_id, index, encoded))
                last = encoded
        except Exception as error:  # a backend bug or CUDA error must not kill the worker
            code, message = failure(error)
            if code == "bad_input":
                logger.warning("job %s: bad input: %s", job_id, error)
            else:
                logger.exception("job %s: the %s backend failed", job_id, self.backend.name)
            self._fail(job_id, code, message)
            return
        if control.should_stop():
            with self._lock:
                shutting_down = self._shutting_down
            if shutting_down:
                self.store.requeue(job_id)  # runs again when the server starts next time
                logger.info("job %s interrupted by the shutdown; it runs again at the next start", job_id)
            else:
                self._fail(job_id, "cancelled", "the job was cancelled while it ran")
            return
        if last is None:
            self._fail(job_id, "backend_error", f"the {self.backend.name} backend produced no frames")
            return
        metadata = {
            **self.backend.describe(),
            "fps": request.fps,
            "seconds": round(time.monotonic() - control.started, 3),
            **job.metadata(),
        }
        checksum = result_checksum(digests)
        self.emit(Done(job_id, len(digests), checksum, metadata))  # clients need not wait for the fsync
        self.store.finish(job_id, len(digests), last, checksum, metadata)
        self.emit(Stored(job_id))
        logger.info("job %s done: %d frames in %.1f s", job_id, len(digests), metadata["seconds"])

    def _fail(self, job_id: str, code: str, message: str) -> None:
        logger.info("job %s %s: %s", job_id, "cancelled" if code == "cancelled" else f"failed ({code})", message)
        self.store.fail(job_id, code, message)
        self.emit(JobFailed(job_id, code, message))
