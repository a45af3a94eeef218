"""The worker actor: a process that loads its backend once, keeps it warm and runs one job at a time.

`run` is a Ray streaming generator: it yields `Progress`, then `Produced` for each frame (encoded
here, on the worker's machine, with its digest) and last `Finished` or `Failed`, each as soon as it
exists. The backend runs in a thread of the actor so its progress callbacks stream while it works;
`cancel` arrives on another of the actor's threads and stops the job at its next step.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from das_core.wire.protocol import EncodedImage, Limits, Progress
from das_server.backends import Backend
from das_server.job_store import parse_submit
from das_server.windows import WindowedJob
from das_server.worker import Control, encoded_frames, failure

logger = logging.getLogger(__name__)

Loader = Callable[[], Backend]


@dataclass(frozen=True)
class Loaded:
    """A worker's backend is warm: what it says about itself and where it runs."""

    description: dict
    node: str
    gpus: str | None  # Ray's GPU ids for this actor ("0", "2,3"); None without
    pid: int


@dataclass(frozen=True)
class Produced:
    """One result frame, encoded with the server's result codec, and its digest for the checksum."""

    index: int
    image: EncodedImage
    digest: bytes


@dataclass(frozen=True)
class Finished:
    """The backend returned: `num_frames` frames (also those not sent again) or, `stopped`, none."""

    num_frames: int
    metadata: dict
    stopped: bool


@dataclass(frozen=True)
class Failed:
    code: str  # bad_input or backend_error
    message: str


ActorEvent = Progress | Produced | Finished | Failed


class JobActor:
    """Made with `ray.remote(JobActor).options(max_concurrency=...)` so `cancel` can reach a running job."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self._controls: dict[str, Control] = {}
        self._cancelled: set[str] = set()  # a cancel may arrive before its run
        self._encoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="das-encode")

    def load(self) -> Loaded:
        import ray

        self._backend = self._loader()
        gpus = ",".join(str(gpu) for gpu in ray.get_gpu_ids()) or None
        return Loaded(self._backend.describe(), socket.gethostname(), gpus, os.getpid())

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)
            if job_id in self._controls:
                self._controls[job_id].stop.set()

    def run(self, job_id: str, request: bytes, limits: Limits, codec: str, from_index: int) -> Iterator[ActorEvent]:
        """Run the stored submit `request`; frames below `from_index` (sent by an earlier worker) are not yielded."""
        backend = self._backend
        if backend is None:
            raise RuntimeError("JobActor.run before load()")
        events: queue.Queue[ActorEvent | None] = queue.Queue()
        control = Control(job_id, events.put)
        with self._lock:
            self._controls[job_id] = control
            if job_id in self._cancelled:
                control.stop.set()
        thread = threading.Thread(
            target=self._produce,
            args=(backend, control, request, limits, codec, from_index, events.put),
            name=f"das-job-{job_id}",
            daemon=True,
        )
        thread.start()
        try:
            while (event := events.get()) is not None:
                yield event
        finally:
            control.stop.set()  # the front end stopped reading: nobody wants the rest
            thread.join()
            with self._lock:
                self._controls.pop(job_id, None)
                self._cancelled.discard(job_id)

    def _produce(
        self,
        backend: Backend,
        control: Control,
        request_bytes: bytes,
        limits: Limits,
        codec: str,
        from_index: int,
        put: Callable[[ActorEvent | None], None],
    ) -> None:
        try:
            request = parse_submit(request_bytes, limits).to_request()
            job = WindowedJob(backend, request, control)
            count = 0
            for index, image, digest in encoded_frames(job.frames(), codec, self._encoder):
                count += 1
                if index >= from_index:
                    put(Produced(index, image, digest))
            seconds = round(time.monotonic() - control.started, 3)
            metadata = {**backend.describe(), "fps": request.fps, "seconds": seconds, **job.metadata()}
            put(Finished(count, metadata, control.should_stop()))
        except Exception as error:  # reported to the front end as the job's failure; the actor lives on
            code, message = failure(error)
            if code != "bad_input":
                logger.exception("job %s: the %s backend failed", control.job_id, backend.name)
            put(Failed(code, message))
        finally:
            put(None)
