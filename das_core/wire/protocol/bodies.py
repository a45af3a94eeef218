"""The bodies of `info` and `reply`: what a server reports, as dataclasses.

Each body has `to_wire()`, the msgpack map with its keys in the order version-1 servers have
always sent them (so the bytes do not change), and `from_wire(fields)`, which checks every field.
Fields added since (a cluster server's `workers` and `pool`) are optional: sent only when set, so
version-1 peers that do not know them keep working. A `reply` does not name its body's type;
`reply_body()` tells the four apart by their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.protocol.fields import Fields
from das_core.wire.protocol.limits import Limits, ProtocolError


@dataclass(frozen=True)
class ServerInfo:
    """The answer to `hello`: who the server is, how full its queue is, what it accepts."""

    version: int  # protocol version
    das: str  # das package version
    backend: str
    model: str | None
    device: str | None
    preview: bool  # True: results are the reference warped along the tracking video, not a model's
    queue_length: int  # jobs queued or running
    max_queue: int
    max_queue_per_client: int
    result_codec: str  # how result frames travel: raw, png or zlib
    limits: Limits
    # What the backend takes: its control, and the size, frames and fps to prepare it at. Version-1
    # servers before these fields ran DaS backends only; `window` then gives DaS's.
    control: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    fps: float | None = None

    workers: int | None = None  # a cluster server's workers ready to run jobs; None: one job at a time

    @property
    def window(self) -> ModelWindow:
        """What to prepare a job at for this server: its backend's window, DaS's for older servers."""
        if self.control is None or self.width is None or self.height is None or self.frames is None:
            return DAS_WINDOW
        return ModelWindow(self.width, self.height, self.frames, self.fps or DAS_WINDOW.fps, self.control)

    def to_wire(self) -> dict[str, Any]:
        body = {
            "version": self.version,
            "das": self.das,
            "backend": self.backend,
            "model": self.model,
            "device": self.device,
            "preview": self.preview,
            "queue_length": self.queue_length,
            "max_queue": self.max_queue,
            "max_queue_per_client": self.max_queue_per_client,
            "result_codec": self.result_codec,
            "limits": self.limits.published(),
        }
        if self.control is not None:
            body.update(control=self.control, width=self.width, height=self.height, frames=self.frames, fps=self.fps)
        if self.workers is not None:
            body["workers"] = self.workers
        return body

    @classmethod
    def from_wire(cls, fields: Fields) -> ServerInfo:
        return cls(
            version=fields.integer("version"),
            das=fields.text("das"),
            backend=fields.text("backend"),
            model=fields.optional_text("model"),
            device=fields.optional_text("device"),
            preview=fields.flag("preview"),
            queue_length=fields.integer("queue_length"),
            max_queue=fields.integer("max_queue"),
            max_queue_per_client=fields.integer("max_queue_per_client"),
            result_codec=fields.text("result_codec"),
            limits=_published_limits(fields.nested("limits")),
            control=fields.optional_text("control"),
            width=fields.optional_integer("width"),
            height=fields.optional_integer("height"),
            frames=fields.optional_integer("frames"),
            fps=fields.optional_number("fps"),
            workers=fields.optional_integer("workers"),
        )


def _published_limits(fields: Fields) -> Limits:
    """The limits an `info` publishes; without `max_windows` (servers before windows) one window per job."""
    windows = fields.optional_integer("max_windows")
    required = {name: fields.integer(name) for name in Limits.PUBLISHED if name != "max_windows"}
    return Limits(**required, max_windows=1 if windows is None else windows)


@dataclass(frozen=True)
class WorkerStatus:
    """One worker of a cluster server's pool (`das_server --ray`)."""

    name: str  # worker-0, worker-1, ...
    node: str | None  # the machine it runs on, once it started
    gpus: str | None  # the GPUs it holds ("0", "2,3"); None without
    backend: str
    state: str  # loading, idle, busy or restarting
    job_id: str | None = None  # the job it runs
    jobs_done: int = 0
    seconds_per_job: float | None = None  # mean over the jobs it finished
    error: str | None = None  # why it last failed (while restarting)

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node": self.node,
            "gpus": self.gpus,
            "backend": self.backend,
            "state": self.state,
            "job_id": self.job_id,
            "jobs_done": self.jobs_done,
            "seconds_per_job": self.seconds_per_job,
            "error": self.error,
        }

    @classmethod
    def from_wire(cls, fields: Fields) -> WorkerStatus:
        return cls(
            name=fields.text("name"),
            node=fields.optional_text("node"),
            gpus=fields.optional_text("gpus"),
            backend=fields.text("backend"),
            state=fields.text("state"),
            job_id=fields.job_id() if fields.has("job_id") else None,
            jobs_done=fields.integer("jobs_done"),
            seconds_per_job=fields.optional_number("seconds_per_job"),
            error=fields.optional_text("error"),
        )


@dataclass(frozen=True)
class ServerStatus:
    """`status` without a job id: the server's `info`, how many jobs are in each state and, from a
    cluster server, its workers."""

    info: ServerInfo
    jobs: dict[str, int]  # states with no jobs are left out
    pool: tuple[WorkerStatus, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        body = {**self.info.to_wire(), "jobs": dict(self.jobs)}
        if self.pool:
            body["pool"] = [worker.to_wire() for worker in self.pool]
        return body

    @classmethod
    def from_wire(cls, fields: Fields) -> ServerStatus:
        counts = fields.nested("jobs")
        states = [state for state in counts.header if isinstance(state, str)]
        if len(states) != len(counts.header):
            raise ProtocolError("field 'jobs' must map state names to job counts")
        pool = (
            tuple(WorkerStatus.from_wire(worker) for worker in fields.nested_list("pool")) if fields.has("pool") else ()
        )
        return cls(ServerInfo.from_wire(fields), {state: counts.integer(state) for state in states}, pool)


@dataclass(frozen=True)
class JobProgress:
    """The latest progress of a running job."""

    phase: str
    step: int
    total: int
    eta_s: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"phase": self.phase, "step": self.step, "total": self.total, "eta_s": self.eta_s}

    @classmethod
    def from_wire(cls, fields: Fields) -> JobProgress:
        return cls(
            fields.text("phase"), fields.integer("step"), fields.integer("total"), fields.optional_number("eta_s")
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed or was cancelled; `code` is one word (`backend_error`, `cancelled`, ...)."""

    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_wire(cls, fields: Fields) -> JobError:
        return cls(fields.text("code"), fields.text("message"))


@dataclass(frozen=True)
class JobStatus:
    """One job as `status JOB_ID` and `list` report it; the optional fields are sent only when set."""

    job_id: str
    state: str  # queued, running, done, failed or cancelled
    prompt: str  # its first 200 characters
    seed: int
    steps: int
    frames_done: int
    created: float  # Unix times
    started: float | None = None
    finished: float | None = None
    checksum: str | None = None  # once done: the checksum `done` carries
    metadata: dict | None = None  # once done: the metadata `done` carries
    error: JobError | None = None  # once failed or cancelled
    position: int | None = None  # jobs ahead of it; `status` only
    progress: JobProgress | None = None  # while it runs; `status` only

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "job_id": self.job_id,
            "state": self.state,
            "prompt": self.prompt,
            "seed": self.seed,
            "steps": self.steps,
            "frames_done": self.frames_done,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }
        if self.checksum is not None:
            body["checksum"] = self.checksum
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.error is not None:
            body["error"] = self.error.to_wire()
        if self.position is not None:
            body["position"] = self.position
        if self.progress is not None:
            body["progress"] = self.progress.to_wire()
        return body

    @classmethod
    def from_wire(cls, fields: Fields) -> JobStatus:
        error, progress = fields.optional_nested("error"), fields.optional_nested("progress")
        return cls(
            job_id=fields.job_id(),
            state=fields.text("state"),
            prompt=fields.text("prompt"),
            seed=fields.integer("seed"),
            steps=fields.integer("steps"),
            frames_done=fields.integer("frames_done"),
            created=fields.number("created"),
            started=fields.optional_number("started"),
            finished=fields.optional_number("finished"),
            checksum=fields.optional_text("checksum"),
            metadata=fields.mapping("metadata") if fields.has("metadata") else None,
            error=None if error is None else JobError.from_wire(error),
            position=fields.optional_integer("position"),
            progress=None if progress is None else JobProgress.from_wire(progress),
        )


@dataclass(frozen=True)
class JobList:
    """`list`: the server's most recent jobs, newest first."""

    jobs: tuple[JobStatus, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": [job.to_wire() for job in self.jobs]}

    @classmethod
    def from_wire(cls, fields: Fields) -> JobList:
        return cls(tuple(JobStatus.from_wire(job) for job in fields.nested_list("jobs")))


@dataclass(frozen=True)
class CancelResult:
    """`cancel`: `cancelled` (it was queued), `cancelling` (it was running) or the state it had ended in."""

    job_id: str
    state: str

    def to_wire(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "state": self.state}

    @classmethod
    def from_wire(cls, fields: Fields) -> CancelResult:
        return cls(fields.job_id(), fields.text("state"))


ReplyBody = ServerStatus | JobStatus | JobList | CancelResult


def reply_body(fields: Fields) -> ReplyBody:
    """Read a `reply` body, telling the kinds apart by their keys (a reply does not name its kind)."""
    if fields.has("version"):
        return ServerStatus.from_wire(fields)
    if fields.has("jobs"):
        return JobList.from_wire(fields)
    if fields.has("prompt"):
        return JobStatus.from_wire(fields)
    if fields.has("job_id") and fields.has("state"):
        return CancelResult.from_wire(fields)
    raise ProtocolError(f"reply body with keys {sorted(map(str, fields.header))[:12]} is none of the known kinds")
