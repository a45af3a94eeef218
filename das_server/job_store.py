"""Jobs on disk: SQLite for state, one folder of media files per job, in the server's --state-dir.

A submit is written (request file fsync'd, row committed) before the server acknowledges it, so
an accepted job survives a crash: at start `recover()` puts running jobs back in the queue and
returns every queued job. Queued jobs start in fair order (each job's `turn`, see `add`): clients
take turns, each client's own jobs keep their submission order. Finished results stay fetchable until retention
(age, then total size) removes them. Thread-safe: the server thread and the workers share it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from das_core.errors import DasError
from das_core.wire.protocol import (
    Done,
    EncodedImage,
    JobError,
    JobStatus,
    Limits,
    Submit,
    check_job_id,
    decode,
    join_parts,
    split_parts,
)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    client TEXT NOT NULL,
    state TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    guidance REAL NOT NULL,
    fps REAL NOT NULL,
    input_frames INTEGER NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    result_codec TEXT,
    result_height INTEGER,
    result_width INTEGER,
    checksum TEXT,
    metadata TEXT,
    error_code TEXT,
    error_message TEXT,
    disk_bytes INTEGER NOT NULL DEFAULT 0,
    turn INTEGER NOT NULL DEFAULT 0,
    windows TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
_ADDED_COLUMNS = {"turn": "INTEGER NOT NULL DEFAULT 0", "windows": "TEXT"}  # for a state dir made by an older server


@dataclass(frozen=True)
class JobRecord:
    """One row of the jobs table."""

    seq: int
    job_id: str
    client: str
    state: str
    prompt: str
    seed: int
    steps: int
    guidance: float
    fps: float
    input_frames: int
    created: float
    started: float | None
    finished: float | None
    frames_done: int
    result_codec: str | None
    result_height: int | None
    result_width: int | None
    checksum: str | None
    metadata: str | None
    error_code: str | None
    error_message: str | None
    disk_bytes: int
    turn: int  # jobs start in (turn, seq) order
    windows: str | None  # the submit's `windows` as a JSON list; None for one window

    def same_job(self, submit: Submit) -> bool:
        """Whether `submit` is this job sent again (a client retrying), not another job with its id."""
        return (self.prompt, self.seed, self.steps, self.windows) == (
            submit.prompt,
            submit.seed,
            submit.steps,
            _windows_text(submit),
        )

    def done(self) -> Done:
        """The `done` event of a finished job, as stored."""
        if self.state != DONE or self.checksum is None:
            raise DasError(f"job {self.job_id} is {self.state}, not done with a checksum")
        return Done(self.job_id, self.frames_done, self.checksum, json.loads(self.metadata) if self.metadata else {})

    def summary(self) -> JobStatus:
        """What `status` and `list` show a client."""
        return JobStatus(
            job_id=self.job_id,
            state=self.state,
            prompt=self.prompt[:200],
            seed=self.seed,
            steps=self.steps,
            frames_done=self.frames_done,
            created=self.created,
            started=self.started,
            finished=self.finished,
            checksum=self.checksum or None,
            metadata=json.loads(self.metadata) if self.metadata else None,
            error=JobError(self.error_code, self.error_message or "") if self.error_code else None,
        )


# By name: a state dir from an older server has its added columns in the order they were added.
_RECORD_COLUMNS = ", ".join(field.name for field in fields(JobRecord))


class JobStore:
    """SQLite state plus per-job media folders under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.media = self.root / "jobs"
        self.media.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -----------------------------------------------------------------------------

    def add(self, submit: Submit, parts: list[bytes], client: str) -> JobRecord:
        """Store an accepted submit durably (request file fsync'd, then the row committed).

        Its turn (start-time fair queueing, one unit per job): one after the client's last job, but
        never before the turn of the latest job to start. So clients take turns, a long batch does
        not hold back a later single shot, and a client that keeps submitting alternates with the
        batch instead of overtaking it for good.
        """
        folder = self._folder(submit.job_id)
        folder.mkdir(exist_ok=True)
        blob = join_parts(parts)
        path = folder / "request.das"
        with open(path, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        with self._lock:
            now_turn = self._db.execute("SELECT MAX(turn) FROM jobs WHERE started IS NOT NULL").fetchone()[0]
            client_turn = self._db.execute("SELECT MAX(turn) + 1 FROM jobs WHERE client=?", (client,)).fetchone()[0]
            self._db.execute(
                "INSERT INTO jobs (job_id, client, state, prompt, seed, steps, guidance, fps, input_frames,"
                " created, disk_bytes, turn, windows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    submit.job_id,
                    client,
                    QUEUED,
                    submit.prompt,
                    submit.seed,
                    submit.steps,
                    submit.guidance,
                    submit.fps,
                    submit.control_frames,
                    time.time(),
                    len(blob),
                    max(now_turn or 0, client_turn or 0),
                    _windows_text(submit),
                ),
            )
            job = self.get(submit.job_id)
        assert job is not None  # inserted above, under the same lock
        return job

    def claim_next(self) -> str | None:
        """Mark the first queued job in fair order running and return its id; None if none is queued."""
        with self._lock:
            for job in self.queue():
                if self.claim(job.job_id):
                    return job.job_id
        return None

    def claim(self, job_id: str) -> bool:
        """Mark a queued job running; False if it is no longer queued (cancelled, gone)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state=?, started=?, frames_done=0 WHERE job_id=? AND state=?",
                (RUNNING, time.time(), job_id, QUEUED),
            )
            return cursor.rowcount == 1

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is not queued."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state=?, finished=?, error_code=?, error_message=? WHERE job_id=? AND state=?",
                (CANCELLED, time.time(), "cancelled", "the job was cancelled before it started", job_id, QUEUED),
            )
            return cursor.rowcount == 1

    def add_frame(self, job_id: str, index: int, image: EncodedImage) -> None:
        """Write one result frame in its wire encoding (counted in the database by `finish`)."""
        (self._folder(job_id) / f"frame_{index:05d}.{image.codec}").write_bytes(image.data)

    def finish(self, job_id: str, num_frames: int, sample: EncodedImage, checksum: str, metadata: dict) -> None:
        """Flush the frames to disk, then mark the job done with `num_frames` frames like `sample`."""
        size = 0
        for path in self._folder(job_id).glob("frame_*"):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            size += path.stat().st_size
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state=?, finished=?, checksum=?, metadata=?, frames_done=?, result_codec=?,"
                " result_height=?, result_width=?, disk_bytes=disk_bytes+? WHERE job_id=?",
                (
                    DONE,
                    time.time(),
                    checksum,
                    json.dumps(metadata),
                    num_frames,
                    sample.codec,
                    sample.height,
                    sample.width,
                    size,
                    job_id,
                ),
            )

    def fail(self, job_id: str, code: str, message: str) -> None:
        """Mark a job failed (or cancelled, when `code` is "cancelled")."""
        state = CANCELLED if code == "cancelled" else FAILED
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state=?, finished=?, error_code=?, error_message=? WHERE job_id=?",
                (state, time.time(), code, message, job_id),
            )

    def requeue(self, job_id: str, *, keep_frames: bool = False) -> None:
        """Put an interrupted job back in the queue, dropping its partial frames unless `keep_frames`
        (a cluster front end that resends none of them when the job runs again)."""
        if not keep_frames:
            for path in self._folder(job_id).glob("frame_*"):
                path.unlink()
        with self._lock:
            self._db.execute("UPDATE jobs SET state=?, started=NULL, frames_done=0 WHERE job_id=?", (QUEUED, job_id))

    def recover(self) -> list[str]:
        """After a restart: running jobs go back to the queue; return all queued ids in fair order."""
        with self._lock:
            running = [row[0] for row in self._db.execute("SELECT job_id FROM jobs WHERE state=?", (RUNNING,))]
        for job_id in running:
            self.requeue(job_id)
        return [job.job_id for job in self.queue()]

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_RECORD_COLUMNS} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return None if row is None else JobRecord(*row)

    def load_submit(self, job_id: str, limits: Limits) -> Submit:
        """The stored submit, parsed again (images stay encoded)."""
        return parse_submit(self.request_bytes(job_id), limits)

    def request_bytes(self, job_id: str) -> bytes:
        """The stored submit as written (what a remote worker parses with `parse_submit`)."""
        return (self._folder(job_id) / "request.das").read_bytes()

    def read_frame(self, job_id: str, index: int, like: EncodedImage) -> EncodedImage:
        """Result frame `index`, stored with the codec and size of `like`."""
        path = self._folder(job_id) / f"frame_{index:05d}.{like.codec}"
        return EncodedImage(like.height, like.width, like.codec, path.read_bytes())

    @staticmethod
    def result_format(job: JobRecord) -> EncodedImage:
        """An empty image with a finished job's result codec and size (for `read_frame`)."""
        if job.result_codec is None or job.result_height is None or job.result_width is None:
            raise DasError(f"job {job.job_id} has no stored result (its state is {job.state})")
        return EncodedImage(job.result_height, job.result_width, job.result_codec, b"")

    def position(self, job: JobRecord) -> int:
        """How many jobs run or wait ahead of a queued job (0 for a running one)."""
        if job.state != QUEUED:
            return 0
        return dict(self.positions()).get(job.job_id, 0)

    def positions(self) -> list[tuple[str, int]]:
        """Each queued job's id and the number of jobs running or queued ahead of it, in fair order."""
        with self._lock:
            queue = self.queue()
            running = self.counts().get(RUNNING, 0)
        return [(job.job_id, running + index) for index, job in enumerate(queue)]

    def queue(self) -> list[JobRecord]:
        """The queued jobs in the order they will start (their turns, see `add`)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM jobs WHERE state=? ORDER BY turn, seq", (QUEUED,)
            ).fetchall()
        return [JobRecord(*row) for row in rows]

    def count_active(self, client: str | None = None) -> int:
        """Queued plus running jobs, for one client or for all."""
        query = "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)"
        args: tuple = ACTIVE_STATES
        if client is not None:
            query += " AND client=?"
            args += (client,)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: count for state, count in rows}

    def recent(self, limit: int = 100) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [JobRecord(*row) for row in rows]

    # -- retention ---------------------------------------------------------------------------

    def prune(self, max_age_s: float, max_bytes: int, now: float | None = None) -> list[str]:
        """Delete finished jobs older than `max_age_s`, then the oldest until under `max_bytes`."""
        now = time.time() if now is None else now
        finished = (DONE, FAILED, CANCELLED)
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, finished, disk_bytes FROM jobs WHERE state IN (?, ?, ?) ORDER BY finished",
                finished,
            ).fetchall()
            total = int(self._db.execute("SELECT COALESCE(SUM(disk_bytes), 0) FROM jobs").fetchone()[0])
        removed = []
        for job_id, finished_at, size in rows:
            if now - (finished_at or now) <= max_age_s and total <= max_bytes:
                break
            self._delete(job_id)
            total -= size
            removed.append(job_id)
        return removed

    def _delete(self, job_id: str) -> None:
        shutil.rmtree(self._folder(job_id), ignore_errors=True)
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE job_id=?", (job_id,))

    def _folder(self, job_id: str) -> Path:
        return self.media / check_job_id(job_id)  # a valid id has no path characters


def _windows_text(submit: Submit) -> str | None:
    return None if submit.windows is None else json.dumps(list(submit.windows))


def parse_submit(blob: bytes, limits: Limits) -> Submit:
    """A stored submit (`JobStore.request_bytes`), parsed again with its images still encoded."""
    message, _ = decode(split_parts(blob), limits, decode_images=False)
    if not isinstance(message, Submit):
        raise DasError(f"the stored request is a {type(message).__name__}, not a submit; submit the job again")
    return message
