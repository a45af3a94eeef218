"""`Pool`: the `Runner` of a cluster front end, a `Slot` per worker actor on the Ray cluster."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from typing import Any

import ray
import zmq

from das_core.errors import DasError
from das_core.wire.protocol import WorkerStatus
from das_server.backends import backend_window, load_backend
from das_server.cluster.actor import JobActor, Loader
from das_server.cluster.connect import ClusterConfig, connect, planned_workers, uses_gpus
from das_server.cluster.slot import Partial, Slot
from das_server.config import ServerConfig
from das_server.job_store import JobStore
from das_server.worker import Emitter, WorkerEvent

logger = logging.getLogger(__name__)

_GROW_EVERY_S = 10.0
_ACTOR_THREADS = 4  # run, cancel and load may overlap


class Pool:
    """Made before the server starts (`load()` waits for the first warm worker), then `attach`ed to
    it as its runner: `Server(config, runner=pool.attach)`."""

    def __init__(self, config: ServerConfig, cluster: ClusterConfig, loader: Loader | None = None) -> None:
        self.config = config
        self.cluster = cluster
        self.backend_name = config.backend
        self.window = backend_window(config.backend, config.model)
        self.gpu = uses_gpus(config.backend, config.device)
        self._loader = loader or functools.partial(
            load_backend,
            config.backend,
            model=config.model,
            device=config.device,
            offload=config.offload,
            base_model=config.base_model,
            fp8=config.fp8,
        )
        self.events: queue.Queue[WorkerEvent] = queue.Queue()
        self.lock = threading.Condition()
        self.stopping = False
        self.slots: list[Slot] = []
        self._partials: dict[str, Partial] = {}
        self._description: dict | None = None
        self._context: zmq.Context | None = None
        self._wake_address = ""
        self._store: JobStore | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._owns_ray = connect(cluster.address)
        try:
            self._actor_class = ray.remote(JobActor)
            count = planned_workers(cluster, self.gpu)
            if count < 1:
                raise DasError(
                    f"the Ray cluster has no GPU for a das worker (--gpus-per-worker "
                    f"{cluster.gpus_per_worker:g}); join GPU machines with `ray start --address HEAD:6379` "
                    "first, or run a CPU backend (--backend preview --workers N)"
                )
            self.slots = [Slot(self, index) for index in range(count)]
        except BaseException:
            self.close()
            raise

    # -- before serving -----------------------------------------------------------------------

    def load(self) -> None:
        """Start every worker; return once one has its backend loaded. Raise `DasError` if none can."""
        for slot in self.slots:
            slot.begin()
        pending = {slot.loading: slot for slot in self.slots}
        errors = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            slot = pending.pop(ready[0])
            if slot.finish_loading():
                return
            errors.append(slot.error)
        self.close()
        raise DasError(f"no worker could load the {self.backend_name} backend: {errors[0]}")

    def attach(self, context: zmq.Context, wake_address: str, store: JobStore) -> Pool:
        """The server's `RunnerFactory`: serve `store`'s jobs, waking the server at `wake_address`."""
        self._context, self._wake_address, self._store = context, wake_address, store
        return self

    # -- the Runner ---------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = list(self.slots)
        if self.cluster.workers is None and self.gpu:
            self._threads.append(threading.Thread(target=self._grow, name="das-pool-grow", daemon=True))
        for thread in self._threads:
            thread.start()

    def describe(self) -> dict:
        return self._description or {"backend": self.backend_name, "model": self.config.model, "device": None}

    def workers(self) -> tuple[WorkerStatus, ...]:
        with self.lock:
            return tuple(slot.status() for slot in self.slots)

    def enqueue(self, job_id: str) -> None:
        self.wake()

    def cancel_running(self, job_id: str) -> bool:
        with self.lock:
            for slot in self.slots:
                if slot.job_id == job_id and slot.actor is not None:
                    slot.cancelling = True
                    slot.actor.cancel.remote(job_id)
                    return True
        return False

    def shutdown(self) -> None:
        """Stop now: running jobs go back to the queue (from the start) for the next start."""
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
            actors = [slot.actor for slot in self.slots if slot.actor is not None]
        for actor in actors:
            ray.kill(actor, no_restart=True)

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.close()

    def is_alive(self) -> bool:
        return not self._closed

    def close(self) -> None:
        """Kill the workers and leave the Ray cluster (if this pool joined it)."""
        if self._closed:
            return
        self._closed = True
        for slot in self.slots:
            if slot.actor is not None:
                ray.kill(slot.actor, no_restart=True)
        if self._owns_ray:
            ray.shutdown()

    # -- for the slots ------------------------------------------------------------------------

    @property
    def store(self) -> JobStore:
        assert self._store is not None, "the pool serves once attached to a server"
        return self._store

    def emitter(self) -> Emitter:
        assert self._context is not None, "the pool serves once attached to a server"
        return Emitter(self._context, self._wake_address, self.events)

    def new_actor(self) -> Any:
        gpus = self.cluster.gpus_per_worker if self.gpu else 0
        options = self._actor_class.options(num_cpus=1, num_gpus=gpus, max_concurrency=_ACTOR_THREADS)
        return options.remote(self._loader)

    def described(self, description: dict) -> None:
        self._description = self._description or description

    def next_job(self, slot: Slot) -> str | None:
        """Wait for a job and claim it (first in fair order) for `slot`; None when stopping."""
        with self.lock:
            while not self.stopping:
                job_id = self.store.claim_next()
                if job_id is not None:
                    slot.job_id, slot.state, slot.cancelling = job_id, "busy", False
                    return job_id
                self.lock.wait(1.0)
        return None

    def wake(self) -> None:
        with self.lock:
            self.lock.notify_all()

    def sleep_until(self, moment: float) -> bool:
        """Wait until `moment` (monotonic); False if the pool stops first."""
        with self.lock:
            while not self.stopping and time.monotonic() < moment:
                self.lock.wait(moment - time.monotonic())
            return not self.stopping

    def partial(self, job_id: str) -> Partial:
        with self.lock:
            return self._partials.setdefault(job_id, Partial())

    def forget(self, job_id: str) -> None:
        with self.lock:
            self._partials.pop(job_id, None)

    def _grow(self) -> None:
        """Add a worker for each GPU that joins the cluster (a `ray start` on another machine)."""
        while self.sleep_until(time.monotonic() + _GROW_EVERY_S):
            target = planned_workers(self.cluster, self.gpu)
            with self.lock:
                added = [Slot(self, index) for index in range(len(self.slots), target)]
                self.slots.extend(added)
            for slot in added:
                logger.info("a GPU joined the cluster: starting %s", slot.label)
                slot.begin()
                slot.start()
                self._threads.append(slot)
