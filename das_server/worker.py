"""The worker thread: owns the backend (the model), runs one job at a time from a FIFO queue.

It never touches the server's socket. Each event (started, progress, frame, done, failed) goes
into `events` (a `queue.Queue`) and a one-byte nudge on an inproc PUSH socket wakes the server
thread, which forwards it to the job's clients. Frames are encoded once (in a small thread pool,
in order), written to the job store, then forwarded, so a later fetch sends the same bytes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import zmq

from das_core.errors import DasError
from das_core.wire.protocol import (
    Done,
    EncodedImage,
    Event,
    Frame,
    JobFailed,
    JobRequest,
    Limits,
    Progress,
    frame_digest,
    result_checksum,
)
from das_server.backends import Backend
from das_server.job_store import JobStore

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


class _Control:
    """Progress with ETA, and the stop flag, for one running job."""

    def __init__(self, worker: Worker, job_id: str) -> None:
        self.worker = worker
        self.job_id = job_id
        self.started = time.monotonic()
        self.stop = threading.Event()

    def progress(self, phase: str, step: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / step * (total - step) if step > 0 and total >= step else None
        self.worker.emit(Progress(self.job_id, phase, int(step), int(total), eta))

    def should_stop(self) -> bool:
        return self.stop.is_set()


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
        self.context = context
        self.wake_address = wake_address
        self.store = store
        self.backend = backend
        self.limits = limits
        self.result_codec = result_codec
        self.jobs: queue.Queue[str | None] = queue.Queue()  # job ids; None stops the thread
        self.events: queue.Queue[WorkerEvent] = queue.Queue()
        self._lock = threading.Lock()
        self._running: _Control | None = None
        self._shutting_down = False
        self._wake: zmq.Socket | None = None  # made in `run`: the socket belongs to the worker thread

    # -- called from the server thread --------------------------------------------------------

    def enqueue(self, job_id: str) -> None:
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
        if self._wake is None:
            raise RuntimeError("Worker.emit is called on the worker thread once run() has started")
        self.events.put(event)
        try:
            self._wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the server is already awake with nudges queued
            pass

    def run(self) -> None:
        self._wake = self.context.socket(zmq.PUSH)
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.setsockopt(zmq.SNDHWM, 16)
        self._wake.connect(self.wake_address)
        encoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="das-encode")
        try:
            while True:
                job_id = self.jobs.get()
                if job_id is None:
                    break
                if not self.store.claim(job_id):
                    continue  # cancelled while queued, or a duplicate entry
                control = _Control(self, job_id)
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
            self._wake.close()

    def _run(self, job_id: str, control: _Control, encoder: ThreadPoolExecutor) -> None:
        self.emit(Started(job_id))
        logger.info("job %s started", job_id)
        try:
            request = self.store.load_submit(job_id, self.limits).to_request()
            digests, last = self._generate(job_id, request, control, encoder)
        except DasError as error:
            logger.warning("job %s: bad input: %s", job_id, error)
            self._fail(job_id, "bad_input", str(error))
            return
        except Exception as error:  # a backend bug or CUDA error must not kill the worker
            logger.exception("job %s: the %s backend failed", job_id, self.backend.name)
            hint = (
                " (out of GPU memory: restart the server with --offload model)" if "out of memory" in str(error) else ""
            )
            self._fail(job_id, "backend_error", f"{type(error).__name__}: {error}"[:500] + hint)
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
        }
        checksum = result_checksum(digests)
        self.emit(Done(job_id, len(digests), checksum, metadata))  # clients need not wait for the fsync
        self.store.finish(job_id, len(digests), last, checksum, metadata)
        self.emit(Stored(job_id))
        logger.info("job %s done: %d frames in %.1f s", job_id, len(digests), metadata["seconds"])

    def _generate(
        self, job_id: str, request: JobRequest, control: _Control, encoder: ThreadPoolExecutor
    ) -> tuple[list[bytes], EncodedImage | None]:
        """Run the backend, storing and forwarding each frame in order; its frames' digests and the last one."""
        digests: list[bytes] = []
        last: EncodedImage | None = None
        pending: deque[tuple[int, np.ndarray, Future[EncodedImage]]] = deque()
        for index, frame in enumerate(self.backend.generate(request, control)):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            pending.append((index, frame, encoder.submit(EncodedImage.encode, frame, self.result_codec)))
            while pending and pending[0][2].done():
                last = self._deliver(job_id, pending.popleft(), digests)
        while pending:
            last = self._deliver(job_id, pending.popleft(), digests)
        return digests, last

    def _deliver(
        self, job_id: str, item: tuple[int, np.ndarray, Future[EncodedImage]], digests: list[bytes]
    ) -> EncodedImage:
        index, frame, future = item
        encoded = future.result()
        digests.append(frame_digest(frame))
        self.store.add_frame(job_id, index, encoded)
        self.emit(Frame(job_id, index, encoded))
        return encoded

    def _fail(self, job_id: str, code: str, message: str) -> None:
        logger.info("job %s %s: %s", job_id, "cancelled" if code == "cancelled" else f"failed ({code})", message)
        self.store.fail(job_id, code, message)
        self.emit(JobFailed(job_id, code, message))
