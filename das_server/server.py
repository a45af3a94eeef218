"""The server thread: owns the ROUTER socket, answers every request, forwards the worker's events.

Nothing a client sends can stop it: each message is decoded by `das_core.wire.protocol` and anything
malformed gets an `error` reply (or is dropped when the peer cannot take it). A submit is stored
before `accepted` goes out. Clients subscribe to a job by submitting or fetching it; progress and
frames reach every subscriber, and a fetch first replays what already exists from the job store.
Jobs run in a worker thread of this process around one backend, or in a pool of workers that a
`Runner` from `das_server.cluster` keeps on a Ray cluster; the server treats both alike.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace

import zmq

from das_core import __version__
from das_core.errors import DasError, plural
from das_core.tracking.window import POINT_TRACKS
from das_core.wire.keys import check_bind, secure
from das_core.wire.protocol import (
    VERSION,
    Accepted,
    Cancel,
    CancelResult,
    DepthRequest,
    Done,
    EncodedImage,
    ErrorReply,
    Event,
    Fetch,
    Frame,
    Hello,
    Info,
    JobFailed,
    JobList,
    JobProgress,
    ListJobs,
    Message,
    Progress,
    ProtocolError,
    Reply,
    ServerInfo,
    ServerStatus,
    StatusRequest,
    Submit,
    decode,
    encode,
)
from das_server.backends import Backend
from das_server.config import ServerConfig
from das_server.depth import DepthEstimator, DepthService
from das_server.job_store import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobRecord, JobStore
from das_server.worker import Runner, RunnerFactory, Started, Stored, Worker

logger = logging.getLogger(__name__)

_WAKE_ADDRESS = "inproc://das-worker-events"
_BATCH = 200  # messages read per loop turn before the worker's events get a turn
_RETENTION_EVERY_S = 600.0
_MAX_SUBSCRIBERS = 32


class Server:
    """`run()` serves until `stop()` (or SIGINT/SIGTERM via `__main__`).

    Jobs run on `backend` in a worker thread, or on what `runner` makes (a cluster's pool); give one.
    """

    def __init__(
        self, config: ServerConfig, backend: Backend | None = None, *, runner: RunnerFactory | None = None
    ) -> None:
        if (backend is None) == (runner is None):
            raise ValueError("Server takes exactly one of backend and runner")
        self.config = config
        self.backend = backend
        self._runner = runner
        self.result_codec = config.result_codec
        self._stop = threading.Event()
        self._subscribers: dict[str, dict[bytes, None]] = {}
        self._forwarded: dict[str, tuple[int, EncodedImage]] = {}  # running job: frames sent, their format
        self._last_progress: dict[str, Progress] = {}
        self._finished: dict[str, Done] = {}  # sent to clients, not yet committed by the worker
        self.ready = threading.Event()
        self.bound_address: str | None = None

    def stop(self) -> None:
        """Ask `run()` to finish; safe from any thread or a signal handler."""
        self._stop.set()

    def run(self) -> None:
        config = self.config
        check_bind(config.bind, config.keys_dir, config.insecure)
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        authenticator = None
        store = JobStore(config.state_dir)
        worker = None
        self.depth = DepthService(context, _WAKE_ADDRESS, DepthEstimator(config.depth_model, config.device))
        try:
            heartbeat_ms = int(config.heartbeat_s * 1000)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
            socket.setsockopt(zmq.MAXMSGSIZE, config.limits.max_part_bytes)
            socket.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
            socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat_ms * 5)
            socket.setsockopt(zmq.HEARTBEAT_TTL, heartbeat_ms * 5)
            if config.keys_dir is not None:
                authenticator = secure(context, socket, config.keys_dir)
            try:
                socket.bind(config.bind)
            except zmq.ZMQError as error:
                raise DasError(
                    f"cannot listen on {config.bind} ({error}); is another server running there? "
                    "Choose another --bind address"
                ) from None
            self.bound_address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
            wake = context.socket(zmq.PULL)
            wake.setsockopt(zmq.LINGER, 0)
            wake.bind(_WAKE_ADDRESS)
            self.store = store
            self.socket = socket
            worker = self._start_runner(context, store)
            self.worker = worker
            recovered = store.recover()
            for job_id in recovered:
                worker.enqueue(job_id)
            worker.start()
            self.depth.start()
            self._prune()
            logger.info(
                "das server %s: backend %s, listening on %s, state in %s%s",
                __version__,
                worker.backend_name,
                self.bound_address,
                config.state_dir,
                f", resuming {plural(len(recovered), 'job')}" if recovered else "",
            )
            self.ready.set()
            self._loop(socket, wake, worker)
            wake.close()
        finally:
            if worker is not None and worker.is_alive():
                worker.shutdown()
                worker.join(timeout=60.0)
            if self.depth.is_alive():
                self.depth.shutdown()
                self.depth.join(timeout=60.0)
            socket.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            store.close()
            context.term()

    def _start_runner(self, context: zmq.Context, store: JobStore) -> Runner:
        if self._runner is not None:
            return self._runner(context, _WAKE_ADDRESS, store)
        assert self.backend is not None  # __init__ checked that one of them is given
        return Worker(context, _WAKE_ADDRESS, store, self.backend, self.config.limits, self.result_codec)

    def _loop(self, socket: zmq.Socket, wake: zmq.Socket, worker: Runner) -> None:
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(wake, zmq.POLLIN)
        next_prune = time.monotonic() + _RETENTION_EVERY_S
        while not self._stop.is_set():
            ready = dict(poller.poll(200))
            if socket in ready:
                for _ in range(_BATCH):
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
            if wake in ready:
                while True:
                    try:
                        wake.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
            self._drain_events(worker)
            self._send_depth_replies()
            if time.monotonic() > next_prune:
                self._prune()
                next_prune = time.monotonic() + _RETENTION_EVERY_S
        self._drain_events(worker)

    # -- requests -----------------------------------------------------------------------------

    def _handle(self, frames: list) -> None:
        if len(frames) < 2:
            return
        identity = frames[0].bytes
        try:
            message, req = decode([frame.buffer for frame in frames[1:]], self.config.limits, decode_images=False)
        except ProtocolError as error:
            logger.debug("refused a message from %s: %s (%s)", identity.hex(), error, error.code)
            self._send(identity, ErrorReply(error.code, str(error)), error.req)
            return
        logger.debug("%s from %s (req %s)", type(message).__name__, identity.hex(), req)
        try:
            if isinstance(message, Submit):
                self._submit(identity, frames, message, req)
            elif isinstance(message, Hello):
                self._send(identity, Info(self.info()), req)
            elif isinstance(message, Fetch):
                self._fetch(identity, message, req)
            elif isinstance(message, Cancel):
                self._cancel(identity, message.job_id, req)
            elif isinstance(message, StatusRequest):
                self._status(identity, message.job_id, req)
            elif isinstance(message, ListJobs):
                self._send(identity, Reply(self._list()), req)
            elif isinstance(message, DepthRequest):
                if not self.depth.submit(identity, message, req):
                    self._send(identity, ErrorReply("depth_busy", "the server has depth requests waiting; retry"), req)
            else:
                self._send(identity, ErrorReply("unexpected", f"{type(message).__name__} is a server message"), req)
        except Exception as error:  # a bug must cost one reply, never the server
            logger.exception("internal error handling %s from %s", type(message).__name__, identity.hex())
            self._send(identity, ErrorReply("internal", f"the server failed on this request: {error}"), req)

    def info(self) -> ServerInfo:
        """What `hello` and `status` report."""
        described = self.worker.describe()
        window = self.worker.window
        workers = self.worker.workers()
        return ServerInfo(
            version=VERSION,
            das=__version__,
            backend=self.worker.backend_name,
            model=described.get("model"),
            device=described.get("device"),
            preview=bool(described.get("preview")),
            queue_length=self.store.count_active() - self._flushing(),
            max_queue=self.config.max_queue,
            max_queue_per_client=self.config.max_queue_per_client,
            result_codec=self.result_codec,
            limits=self.config.limits,
            control=window.control,
            width=window.width,
            height=window.height,
            frames=window.frames,
            fps=window.fps,
            workers=None if workers is None else sum(1 for worker in workers if worker.state in ("idle", "busy")),
        )

    def _list(self) -> JobList:
        """The most recent jobs; one whose `done` went out counts as done while the worker stores it."""
        jobs = [job.summary() for job in self.store.recent()]
        return JobList(tuple(replace(job, state=DONE) if job.job_id in self._finished else job for job in jobs))

    def _flushing(self) -> int:
        """Jobs whose `done` went out while their row still says running."""
        return sum(1 for job_id in self._finished if (job := self.store.get(job_id)) and job.state == RUNNING)

    def _submit(self, identity: bytes, frames: list, submit: Submit, req: int | None) -> None:
        existing = self.store.get(submit.job_id)
        if existing is not None:
            if not existing.same_job(submit):
                self._send(
                    identity,
                    ErrorReply(
                        "job_id_taken",
                        f"job id {submit.job_id} is already used by a different job; submit with a new id",
                    ),
                    req,
                )
                return
            self._send(identity, Accepted(submit.job_id, self.store.position(existing)), req)  # a retried submit
            self._attach(identity, existing, 0, announce=False)
            return
        wrong_control = self._wrong_control(submit)
        if wrong_control:
            self._send(identity, ErrorReply("wrong_control", wrong_control), req)
            return
        client = self._client_key(frames, submit)
        if self.store.count_active() >= self.config.max_queue:
            self._send(
                identity,
                ErrorReply(
                    "queue_full",
                    f"the server's queue is full ({plural(self.config.max_queue, 'job')}); try again when some finish",
                ),
                req,
            )
            return
        if self.store.count_active(client) >= self.config.max_queue_per_client:
            self._send(
                identity,
                ErrorReply(
                    "client_queue_full",
                    f"you already have {plural(self.config.max_queue_per_client, 'job')} queued or running; "
                    "wait for one to finish",
                ),
                req,
            )
            return
        try:
            job = self.store.add(submit, [frame.bytes for frame in frames[1:]], client)
        except OSError as error:
            self._send(identity, ErrorReply("storage", f"the server could not store the job ({error})"), req)
            return
        self.worker.enqueue(job.job_id)
        logger.info("job %s accepted from %s", job.job_id, client)
        self._subscribe(job.job_id, identity)
        self._send(identity, Accepted(job.job_id, self.store.position(job)), req)

    def _wrong_control(self, submit: Submit) -> str | None:
        """Why the backend cannot follow the job's control, or None when it can."""
        needed = self.worker.window.control
        if submit.control == needed:
            return None
        if needed == POINT_TRACKS:
            return (
                f"this server runs the {self.worker.backend_name} backend, which follows point tracks, but the job carries "
                "a tracking video; send point tracks made from the same tracks (das generate --tracks TRACKS.npz "
                "asks the server what it needs, das render-tracks --for wan-move writes them)"
            )
        return (
            f"this server runs the {self.worker.backend_name} backend, which follows a DaS tracking video, but the job "
            "carries point tracks; send the tracking video (das generate --tracks TRACKS.npz asks the server "
            "what it needs, das render-tracking draws it)"
        )

    @staticmethod
    def _client_key(frames: list, submit: Submit) -> str:
        """Who a job counts against: the CURVE public key when authenticated, else the client's name."""
        try:
            user = frames[1].get("User-Id")
        except zmq.ZMQError:
            user = None
        return f"key:{user}" if user else f"name:{submit.client}"

    def _fetch(self, identity: bytes, fetch: Fetch, req: int | None) -> None:
        job = self.store.get(fetch.job_id)
        if job is None:
            self._send(
                identity,
                ErrorReply(
                    "unknown_job",
                    f"no job {fetch.job_id} on this server (finished jobs are kept {plural(self.config.retention_days, 'day')})",
                ),
                req,
            )
            return
        self._attach(identity, job, fetch.from_index, announce=True)

    def _attach(self, identity: bytes, job: JobRecord, from_index: int, *, announce: bool) -> None:
        """Send what exists of `job` from frame `from_index` on, and subscribe if it is not over."""
        if job.state == QUEUED:
            self._subscribe(job.job_id, identity)
            if announce:
                self._send(identity, Accepted(job.job_id, self.store.position(job)))
            self._send_forwarded(identity, job.job_id, from_index)  # from a worker that died; not sent again
        elif job.job_id in self._finished:  # done, still being flushed to disk by the worker
            self._send_forwarded(identity, job.job_id, from_index)
            self._send(identity, self._finished[job.job_id])
        elif job.state == RUNNING:
            self._subscribe(job.job_id, identity)
            self._send_forwarded(identity, job.job_id, from_index)
            progress = self._last_progress.get(job.job_id)
            if progress is not None:
                self._send(identity, progress)
            elif announce:  # no progress yet: a fetch still gets an answer, or the client thinks the server is gone
                self._send(identity, Accepted(job.job_id, 0))
        elif job.state == DONE:
            like = self.store.result_format(job)
            for index in range(from_index, job.frames_done):
                self._send(identity, Frame(job.job_id, index, self.store.read_frame(job.job_id, index, like)))
            self._send(identity, job.done())
        elif job.state in (FAILED, CANCELLED):
            self._send(identity, JobFailed(job.job_id, job.error_code or job.state, job.error_message or job.state))

    def _send_forwarded(self, identity: bytes, job_id: str, from_index: int) -> None:
        """Resend the frames of an unfinished job that already went out, from `from_index` on."""
        if job_id in self._forwarded:
            count, like = self._forwarded[job_id]
            for index in range(from_index, count):
                self._send(identity, Frame(job_id, index, self.store.read_frame(job_id, index, like)))

    def _cancel(self, identity: bytes, job_id: str, req: int | None) -> None:
        job = self.store.get(job_id)
        if job is None:
            self._send(identity, ErrorReply("unknown_job", f"no job {job_id} on this server"), req)
            return
        if self.store.cancel_queued(job_id):
            self._publish(JobFailed(job_id, "cancelled", "the job was cancelled before it started"))
            state = CANCELLED
        elif self.worker.cancel_running(job_id):
            state = "cancelling"
        else:
            state = job.state
        self._send(identity, Reply(CancelResult(job_id, state)), req)

    def _status(self, identity: bytes, job_id: str | None, req: int | None) -> None:
        if job_id is None:
            self._send(identity, Reply(self._server_status()), req)
            return
        job = self.store.get(job_id)
        if job is None:
            self._send(identity, ErrorReply("unknown_job", f"no job {job_id} on this server"), req)
            return
        status = replace(job.summary(), position=self.store.position(job))
        if job_id in self._forwarded:
            status = replace(status, frames_done=self._forwarded[job_id][0])
        if job_id in self._finished:
            done = self._finished[job_id]
            status = replace(status, state=DONE, checksum=done.checksum, metadata=done.metadata)
        progress = self._last_progress.get(job_id)
        if progress is not None:
            status = replace(
                status, progress=JobProgress(progress.phase, progress.step, progress.total, progress.eta_s)
            )
        self._send(identity, Reply(status), req)

    def _server_status(self) -> ServerStatus:
        counts = self.store.counts()
        flushing = self._flushing()
        if flushing:  # done and announced, the worker is still writing it
            counts[RUNNING] -= flushing
            counts[DONE] = counts.get(DONE, 0) + flushing
        jobs = {state: count for state, count in counts.items() if count}
        return ServerStatus(self.info(), jobs, self.worker.workers() or ())

    # -- worker events ------------------------------------------------------------------------

    def _drain_events(self, worker: Runner) -> None:
        while True:
            try:
                event = worker.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, Stored):
                self._finished.pop(event.job_id, None)
                self._forwarded.pop(event.job_id, None)
                continue
            if isinstance(event, Started):
                for job_id, position in self.store.positions():
                    if job_id in self._subscribers:
                        self._publish(Accepted(job_id, position))
                continue
            if isinstance(event, Progress):
                self._last_progress[event.job_id] = event
            elif isinstance(event, Frame):
                self._forwarded[event.job_id] = (event.index + 1, event.image)
            elif isinstance(event, Done):
                self._finished[event.job_id] = event
            self._publish(event)
            if isinstance(event, (Done, JobFailed)):
                self._subscribers.pop(event.job_id, None)
                self._last_progress.pop(event.job_id, None)
            if isinstance(event, JobFailed):
                self._forwarded.pop(event.job_id, None)

    def _send_depth_replies(self) -> None:
        while True:
            try:
                reply = self.depth.replies.get_nowait()
            except queue.Empty:
                return
            self._send(reply.identity, reply.message, reply.req)

    # -- sending ------------------------------------------------------------------------------

    def _subscribe(self, job_id: str, identity: bytes) -> None:
        subscribers = self._subscribers.setdefault(job_id, {})
        subscribers[identity] = None
        while len(subscribers) > _MAX_SUBSCRIBERS:
            subscribers.pop(next(iter(subscribers)))

    def _publish(self, event: Event) -> None:
        subscribers = self._subscribers.get(event.job_id, {})
        if not subscribers:
            return
        parts = encode(event)
        for identity in list(subscribers):
            if not self._send_parts(identity, parts):
                subscribers.pop(identity, None)  # gone; it can fetch again later
        if isinstance(event, (Done, JobFailed)) or not subscribers:
            self._subscribers.pop(event.job_id, None)

    def _send(self, identity: bytes, message: Message, req: int | None = None) -> bool:
        return self._send_parts(identity, encode(message, req))

    def _send_parts(self, identity: bytes, parts: list[bytes]) -> bool:
        try:
            self.socket.send_multipart([identity, *parts], zmq.NOBLOCK, copy=len(parts) < 2)
        except zmq.ZMQError:  # peer gone (ROUTER_MANDATORY) or not reading (high-water mark)
            return False
        return True

    def _prune(self) -> None:
        removed = self.store.prune(self.config.retention_seconds, self.config.retention_bytes)
        if removed:
            logger.info("retention removed %s", plural(len(removed), "finished job"))
