"""One worker of the pool, seen from the front end: a thread that starts its actor (again, with
backoff, when it fails), claims the next job in fair order and relays what the actor streams.

Frames reach the store and the clients in order and exactly once: when a worker dies mid-job the
job goes back to the queue with its frames, and the next worker resends none of them (the
`Partial` remembers their digests, so the checksum covers exactly the frames that went out).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import ray
from ray.exceptions import RayError, RayTaskError

from das_core.wire.protocol import Done, EncodedImage, Frame, JobFailed, Progress, WorkerStatus, result_checksum
from das_server.cluster.actor import Failed, Finished, Loaded, Produced
from das_server.config import ServerConfig
from das_server.job_store import JobStore
from das_server.worker import Emitter, Started, Stored

logger = logging.getLogger(__name__)

MAX_DEATHS = 3  # a job whose workers died this often fails instead of killing the next one
MAX_BACKOFF_S = 60.0


@dataclass
class Partial:
    """What earlier attempts at a job already sent: its frames' digests and their format (no pixels)."""

    digests: list[bytes] = field(default_factory=list)
    sample: EncodedImage | None = None
    deaths: int = 0


class PoolView(Protocol):
    """What a slot needs from its pool (`das_server.cluster.pool.Pool`); `lock` guards the slots' state."""

    lock: threading.Condition
    stopping: bool
    backend_name: str
    config: ServerConfig

    @property
    def store(self) -> JobStore: ...

    def emitter(self) -> Emitter: ...

    def new_actor(self) -> Any: ...

    def described(self, description: dict) -> None: ...

    def next_job(self, slot: Slot) -> str | None: ...

    def wake(self) -> None: ...

    def sleep_until(self, moment: float) -> bool: ...

    def partial(self, job_id: str) -> Partial: ...

    def forget(self, job_id: str) -> None: ...


class Slot(threading.Thread):
    """Keeps one `JobActor` warm and runs the pool's jobs on it, one at a time."""

    def __init__(self, pool: PoolView, index: int) -> None:
        super().__init__(name=f"das-worker-{index}", daemon=True)
        self.pool = pool
        self.label = f"worker-{index}"
        self.emitter: Emitter | None = None  # opened by the thread, once the pool serves
        self.actor: Any = None  # a Ray actor handle
        self.loading: Any = None  # the ObjectRef of the actor's `load()` while it loads
        self.loaded: Loaded | None = None
        self.state = "loading"
        self.job_id: str | None = None
        self.cancelling = False
        self.jobs_done = 0
        self.busy_seconds = 0.0
        self.error: str | None = None
        self.failures = 0  # failed starts in a row; the next waits 2**(failures-1) s
        self.retry_at = 0.0

    # -- starting the actor -------------------------------------------------------------------

    def begin(self) -> None:
        """Create the actor and ask it to load its backend."""
        actor = self.pool.new_actor()
        with self.pool.lock:
            self.actor, self.loading, self.loaded, self.state = actor, actor.load.remote(), None, "loading"

    def finish_loading(self) -> bool:
        """Collect a finished `load()`; on failure kill the actor and schedule a retry. True if loaded."""
        try:
            loaded = ray.get(self.loading)
        except Exception as error:  # its process died, or the backend refused to load
            message = error_text(error)
            ray.kill(self.actor, no_restart=True)
            with self.pool.lock:
                self.failures += 1
                delay = min(MAX_BACKOFF_S, 2.0 ** (self.failures - 1))
                self.actor, self.loading, self.state, self.retry_at = None, None, "restarting", time.monotonic() + delay
                self.error = f"failed to start ({message}); retry {self.failures} in {delay:g} s"
            logger.warning("%s %s", self.label, self.error)
            return False
        with self.pool.lock:
            self.loaded, self.loading, self.state, self.failures, self.error = loaded, None, "idle", 0, None
        self.pool.described(loaded.description)
        logger.info(
            "%s ready on %s%s (pid %d)",
            self.label,
            loaded.node,
            f", GPU {loaded.gpus}" if loaded.gpus else "",
            loaded.pid,
        )
        return True

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        self.emitter = self.pool.emitter()
        self.emitter.open()
        try:
            while not self.pool.stopping:
                if self.state == "idle":
                    job_id = self.pool.next_job(self)
                    if job_id is not None:
                        self._guarded_run(job_id)
                elif self.loading is not None:
                    ready, _ = ray.wait([self.loading], timeout=0.5)
                    if ready:
                        self.finish_loading()
                elif self.pool.sleep_until(self.retry_at):
                    self.begin()
        finally:
            self.emitter.close()

    def status(self) -> WorkerStatus:
        """For `status` (call with the pool's lock held)."""
        loaded = self.loaded
        return WorkerStatus(
            name=self.label,
            node=loaded.node if loaded else None,
            gpus=loaded.gpus if loaded else None,
            backend=self.pool.backend_name,
            state=self.state,
            job_id=self.job_id,
            jobs_done=self.jobs_done,
            seconds_per_job=round(self.busy_seconds / self.jobs_done, 3) if self.jobs_done else None,
            error=self.error,
        )

    # -- one job ------------------------------------------------------------------------------

    def _guarded_run(self, job_id: str) -> None:
        try:
            self._run(job_id)
        except Exception as error:  # a bug or a storage error costs this job, not the worker
            logger.exception("%s: relaying job %s failed", self.label, job_id)
            self._fail(job_id, "backend_error", f"the server failed while running this job: {error}"[:500])
            self.pool.forget(job_id)
            with self.pool.lock:
                self.job_id, self.state = None, "idle"

    def _run(self, job_id: str) -> None:
        pool, store = self.pool, self.pool.store
        partial = pool.partial(job_id)
        started = time.monotonic()
        self.emit(Started(job_id))
        logger.info("job %s started on %s", job_id, self.label)
        outcome: Finished | Failed | None = None
        try:
            stream = self.actor.run.options(num_returns="streaming").remote(
                job_id, store.request_bytes(job_id), pool.config.limits, pool.config.result_codec, len(partial.digests)
            )
            for ref in stream:
                event = ray.get(ref)
                if isinstance(event, Progress):
                    self.emit(event)
                elif isinstance(event, Produced):
                    self._deliver(job_id, partial, event)
                else:
                    outcome = event
        except RayTaskError as error:  # the actor's method itself broke, not the backend
            outcome = Failed("backend_error", error_text(error))
        except RayError as error:  # the worker's process or machine is gone, or unreachable
            self._lost(job_id, partial, error)
            return
        self._conclude(job_id, partial, outcome, time.monotonic() - started)

    def _deliver(self, job_id: str, partial: Partial, produced: Produced) -> None:
        if produced.index != len(partial.digests):
            return  # an earlier worker sent this one already
        self.pool.store.add_frame(job_id, produced.index, produced.image)
        partial.digests.append(produced.digest)
        partial.sample = replace(produced.image, data=b"")
        self.emit(Frame(job_id, produced.index, produced.image))

    def _conclude(self, job_id: str, partial: Partial, outcome: Finished | Failed | None, seconds: float) -> None:
        store = self.pool.store
        if isinstance(outcome, Finished) and outcome.stopped:
            if self.cancelling:
                self._fail(job_id, "cancelled", "the job was cancelled while it ran")
            else:  # the front end is stopping
                store.requeue(job_id)
        elif isinstance(outcome, Failed):
            self._fail(job_id, outcome.code, outcome.message)
        elif outcome is None or partial.sample is None or outcome.num_frames != len(partial.digests):
            self._fail(job_id, "backend_error", f"the {self.pool.backend_name} backend produced no complete result")
        else:
            metadata = {**outcome.metadata, "worker": self.label, "node": self.loaded.node if self.loaded else None}
            checksum = result_checksum(partial.digests)
            self.emit(Done(job_id, len(partial.digests), checksum, metadata))
            store.finish(job_id, len(partial.digests), partial.sample, checksum, metadata)
            self.emit(Stored(job_id))
            logger.info("job %s done on %s: %d frames in %.1f s", job_id, self.label, len(partial.digests), seconds)
            with self.pool.lock:
                self.jobs_done += 1
                self.busy_seconds += seconds
        self.pool.forget(job_id)
        with self.pool.lock:
            self.job_id, self.state = None, "idle"

    def _lost(self, job_id: str, partial: Partial, error: Exception) -> None:
        """The actor died with the job: back to the queue (or failed after MAX_DEATHS), then a new actor."""
        ray.kill(self.actor, no_restart=True)  # if it only lost touch, it must not run the job on
        message = error_text(error)
        if self.pool.stopping:
            self.pool.store.requeue(job_id)  # runs from the start when the server starts again
            self.pool.forget(job_id)
        elif self.cancelling:
            self._fail(job_id, "cancelled", "the job was cancelled while it ran")
            self.pool.forget(job_id)
        else:
            partial.deaths += 1
            logger.warning("%s died running job %s (%s)", self.label, job_id, message)
            if partial.deaths >= MAX_DEATHS:
                self._fail(
                    job_id, "backend_error", f"the workers running this job died {partial.deaths} times ({message})"
                )
                self.pool.forget(job_id)
            else:
                self.pool.store.requeue(job_id, keep_frames=True)
                self.pool.wake()
        with self.pool.lock:
            self.actor, self.loaded, self.job_id, self.state = None, None, None, "restarting"
            self.error, self.retry_at = f"died running job {job_id} ({message})", time.monotonic()

    def _fail(self, job_id: str, code: str, message: str) -> None:
        logger.info("job %s %s: %s", job_id, "cancelled" if code == "cancelled" else f"failed ({code})", message)
        self.pool.store.fail(job_id, code, message)
        self.emit(JobFailed(job_id, code, message))

    def emit(self, event: Started | Stored | Progress | Frame | Done | JobFailed) -> None:
        assert self.emitter is not None
        self.emitter.emit(event)


def error_text(error: Exception) -> str:
    """A failure in one line: the backend's own error, or the first line of Ray's."""
    if isinstance(error, RayTaskError) and error.cause is not None:
        error = error.cause
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:300]
