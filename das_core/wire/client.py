"""`DasClient`: talk to a das server from a script, the CLI or Blender's network thread (no torch).

One DEALER socket, used only by the thread that calls the client. Requests (`info`, `status`,
`list_jobs`, `cancel`) wait for their reply up to `timeout`, return its typed body (`ServerInfo`,
`ServerStatus` or `JobStatus`, `JobStatus`es, `CancelResult`) and raise `ServerUnavailable` when
none comes. `submit` returns once the server has stored the job; if no acceptance arrives it
reconnects and re-sends the same message under the same job id (the server never runs a job id
twice). `events(job_id)` yields `Accepted`, `Progress`, `Frame`, then `Done` or `JobFailed`;
after a silence it asks the server again for what it missed (so a restart or a dropped
connection costs nothing), and it checks the result checksum before yielding `Done`. A live
server answers every such question, so a server that sends nothing for `timeout` seconds while
asked is gone: the stream raises `ServerStopped` (`ServerUnavailable` if it never answered). If a
restarted server ran the job again, frames are yielded again by index: keep the latest.
`collect_frames(events)` does that and returns the job's video, or raises when the job failed.
"""

from __future__ import annotations

import getpass
import socket as _socket
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn, TypeVar, overload

import numpy as np
import zmq

from das_core.errors import DasError
from das_core.wire.address import check_address
from das_core.wire.protocol import (
    Accepted,
    Cancel,
    CancelResult,
    DepthRequest,
    DepthResult,
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
    JobRequest,
    JobStatus,
    ListJobs,
    Message,
    Progress,
    ProtocolError,
    Reply,
    ReplyBody,
    ServerInfo,
    ServerStatus,
    StatusRequest,
    Submit,
    check_job_id,
    decode,
    encode,
    frame_digest,
    result_checksum,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Accepted",
    "DasClient",
    "Done",
    "Frame",
    "JobFailed",
    "JobFailedError",
    "JobRequest",
    "JobResult",
    "Progress",
    "ServerError",
    "ServerStopped",
    "ServerUnavailable",
    "collect_frames",
]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
AnswerT = TypeVar("AnswerT", Info, Reply, DepthResult)
BodyT = TypeVar("BodyT", bound=ReplyBody)
_RESUBSCRIBE_S = 5.0  # ask again for a job's events after this long without news (at most half the timeout)
_MAX_REFETCH = 5


class ServerUnavailable(DasError):
    """No das server answered in time."""


class ServerStopped(ServerUnavailable):
    """The server stopped answering while the client waited for a job; the job may go on if it comes back."""


class ServerError(DasError):
    """The server refused a request; `code` says why in a word, the message in a sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DasClient:
    """A connection to one das server; also a context manager that closes it."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float = 10.0,
        server_public_key: bytes | None = None,
        client_secret_key: bytes | None = None,
        client_public_key: bytes | None = None,
        name: str | None = None,
    ) -> None:
        keys = (server_public_key, client_secret_key, client_public_key)
        if any(keys) and not all(keys):
            raise DasError("CURVE needs all three keys: server_public_key, client_secret_key, client_public_key")
        check_address(address, "the server address")
        self.address = address
        self.timeout = float(timeout)
        self.name = name or f"{getpass.getuser()}@{_socket.gethostname()}"
        self._keys = keys if all(keys) else None
        self._context: zmq.Context = zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._next_req = 1
        self._replies: dict[int | None, Message] = {}
        self._events: dict[str, deque] = defaultdict(deque)
        self._heard_at: float | None = None  # when the server last sent anything (time.monotonic)

    def __enter__(self) -> DasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection (jobs keep running on the server; fetch them later)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    # -- requests -----------------------------------------------------------------------------

    def info(self) -> ServerInfo:
        """The server's version, backend, model, device, queue length and limits."""
        return self._request(Hello(self.name), Info).body

    @overload
    def status(self, job_id: None = None) -> ServerStatus: ...

    @overload
    def status(self, job_id: str) -> JobStatus: ...

    def status(self, job_id: str | None = None) -> ServerStatus | JobStatus:
        """One job's state (and position, progress), or the server's summary without a job id."""
        if job_id is None:
            return self._reply(StatusRequest(None), ServerStatus)
        return self._reply(StatusRequest(check_job_id(job_id)), JobStatus)

    def list_jobs(self) -> list[JobStatus]:
        """The server's most recent jobs, newest first."""
        return list(self._reply(ListJobs(), JobList).jobs)

    def cancel(self, job_id: str) -> CancelResult:
        """Cancel a queued or running job; its event stream ends with `JobFailed(code="cancelled")`."""
        return self._reply(Cancel(check_job_id(job_id)), CancelResult)

    def depth(self, image: np.ndarray, *, timeout: float = 120.0) -> DepthResult:
        """The server's depth estimate of a uint8 [H, W, 3] image: a float32 [H, W] map, the model, metric or not.

        Waits up to `timeout` s (the server loads its depth model on the first request).
        """
        request = DepthRequest(EncodedImage.encode(np.asarray(image), "png"))
        saved, self.timeout = self.timeout, float(timeout)
        try:
            return self._request(request, DepthResult)
        finally:
            self.timeout = saved

    def submit(self, request: JobRequest, *, codec: str = "png") -> str:
        """Send a job and return its id once the server has stored it.

        `codec` is how the images travel (all lossless, see `protocol.CODECS`): "png" is smallest,
        "zlib" encodes about twice as fast (mostly black tracking videos stay small), "raw" is 50 MB.
        """
        job_id = check_job_id(request.job_id) if request.job_id is not None else uuid.uuid4().hex
        req = self._new_req()
        parts = encode(Submit.from_request(request, job_id, client=self.name, codec=codec), req)
        deadline = time.monotonic() + self.timeout
        wait = 1.0
        while True:
            self._send_parts(parts)
            reply = self._wait_reply(req, min(deadline, time.monotonic() + wait))
            if reply is not None:
                break
            if time.monotonic() >= deadline:
                self._unavailable()
            self._reconnect()  # and send the same submit again: the server keeps job ids unique
            wait *= 2
        if isinstance(reply, ErrorReply):
            raise ServerError(reply.code, f"the server refused job {job_id}: {reply.message}")
        if not isinstance(reply, Accepted):
            raise ProtocolError(f"expected 'accepted' for a submit, got {type(reply).__name__}")
        return job_id

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[Event]:
        """Yield a job's events until `Done` or `JobFailed`, or until the server stops answering.

        `timeout`, when given, also bounds how long the job may go without news.
        """
        return self._stream(check_job_id(job_id), timeout, None)

    def fetch(self, job_id: str, timeout: float | None = None) -> Iterator[Event]:
        """All of a job's events again from the first frame, waiting if it has not finished."""
        check_job_id(job_id)
        self._events.pop(job_id, None)
        req = self._new_req()
        self._send_parts(encode(Fetch(job_id, 0), req))
        return self._stream(job_id, timeout, req)

    # -- the event stream ---------------------------------------------------------------------

    def _stream(self, job_id: str, timeout: float | None, fetch_req: int | None) -> Iterator[Event]:
        digests: dict[int, bytes] = {}
        refetches = 0
        refetched_all = False
        patience = min(_RESUBSCRIBE_S, self.timeout / 2)  # a live server then has half the timeout to answer
        started = last_news = last_ask = time.monotonic()
        asked = started if fetch_req is not None else None  # when this stream last asked the server
        pending = self._events[job_id]
        while True:
            while pending:
                event = pending.popleft()
                last_news = last_ask = time.monotonic()
                if isinstance(event, Frame):
                    if event.index in digests:
                        continue  # sent again after a re-fetch
                    digests[event.index] = frame_digest(event.image)
                elif isinstance(event, Done):
                    missing = [i for i in range(event.num_frames) if i not in digests]
                    if missing:
                        refetches += 1
                        if refetches > _MAX_REFETCH:
                            raise ProtocolError(f"job {job_id}: frames {missing[:5]} never arrived", "incomplete")
                        self._send_parts(encode(Fetch(job_id, missing[0])))
                        asked = last_news
                        continue
                    checksum = result_checksum([digests[i] for i in range(event.num_frames)])
                    if checksum != event.checksum and not refetched_all:
                        refetched_all = True  # the job ran again after a server restart: take all its frames
                        digests.clear()
                        self._send_parts(encode(Fetch(job_id, 0)))
                        asked = last_news
                        continue
                    if checksum != event.checksum:
                        raise ProtocolError(
                            f"job {job_id}: the frames received do not match the server's checksum; fetch it again",
                            "checksum",
                        )
                    self._events.pop(job_id, None)
                    yield event
                    return
                elif isinstance(event, JobFailed):
                    self._events.pop(job_id, None)
                    yield event
                    return
                yield event
            if fetch_req is not None and fetch_req in self._replies:
                reply = self._replies.pop(fetch_req)
                if isinstance(reply, ErrorReply):
                    self._events.pop(job_id, None)
                    raise ServerError(reply.code, reply.message)
            now = time.monotonic()
            if timeout is not None and now - last_news > timeout:
                self._unavailable(f"job {job_id} had no news from the server for {timeout:g} s")
            if now - last_ask > patience:
                fetch_req = self._new_req()
                next_missing = next(i for i in range(len(digests) + 1) if i not in digests)
                self._send_parts(encode(Fetch(job_id, next_missing), fetch_req))
                last_ask = asked = now
            if not self._receive(now + 0.5):  # only then: messages may wait unread while the caller is busy
                self._check_answering(job_id, started, asked)
            pending = self._events[job_id]

    def _check_answering(self, job_id: str, since: float, asked: float | None) -> None:
        """Raise when the server has sent nothing for `timeout` seconds since `since`, though asked meanwhile."""
        quiet_since = max(since, self._heard_at or since)
        if asked is None or asked < quiet_since or time.monotonic() - quiet_since <= self.timeout:
            return
        if self._heard_at is None:
            self._unavailable()
        raise ServerStopped(
            f"the das server at {self.address} stopped answering (nothing for {self.timeout:g} s); "
            f"job {job_id} may go on if the server comes back"
        )

    # -- the socket ---------------------------------------------------------------------------

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
            sock.setsockopt(zmq.HEARTBEAT_TTL, 10000)
            if self._keys is not None:
                server_public, client_secret, client_public = self._keys
                sock.curve_serverkey = server_public
                sock.curve_secretkey = client_secret
                sock.curve_publickey = client_public
            try:
                sock.connect(self.address)
            except zmq.ZMQError as error:
                sock.close(linger=0)
                raise DasError(
                    f"cannot connect to {self.address!r} ({error}); use an address like {DEFAULT_ADDRESS}"
                ) from None
            self._socket = sock
        return self._socket

    def _reconnect(self) -> None:
        self.close()
        self._connect()

    def _new_req(self) -> int:
        req = self._next_req
        self._next_req += 1
        return req

    def _send_parts(self, parts: list[bytes]) -> None:
        try:
            self._connect().send_multipart(parts, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._unavailable()

    def _request(self, message: Message, answer: type[AnswerT]) -> AnswerT:
        """Send `message` and wait for its answer, which must be an `answer`."""
        req = self._new_req()
        self._send_parts(encode(message, req))
        reply = self._wait_reply(req, time.monotonic() + self.timeout)
        if reply is None:
            self._reconnect()  # drop the unanswered request with the old socket
            self._unavailable()
        if isinstance(reply, ErrorReply):
            raise ServerError(reply.code, reply.message)
        if not isinstance(reply, answer):
            raise ProtocolError(f"expected {answer.__name__} for {type(message).__name__}, got {type(reply).__name__}")
        return reply

    def _reply(self, message: Message, body: type[BodyT]) -> BodyT:
        """Send `message` and return the body of its `reply`, which must be a `body`."""
        reply = self._request(message, Reply).body
        if not isinstance(reply, body):
            raise ProtocolError(f"expected {body.__name__} for {type(message).__name__}, got {type(reply).__name__}")
        return reply

    def _wait_reply(self, req: int, deadline: float) -> Message | None:
        while req not in self._replies:
            if not self._receive(deadline) and time.monotonic() >= deadline:
                return None
        return self._replies.pop(req)

    def _receive(self, deadline: float) -> bool:
        """Read one message (waiting until `deadline` at most) and file it; False if none came."""
        sock = self._connect()
        wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not sock.poll(wait_ms, zmq.POLLIN):
            return False
        parts = sock.recv_multipart(copy=False)
        self._heard_at = time.monotonic()
        try:
            message, req = decode([part.buffer for part in parts])
        except ProtocolError as error:
            if error.code == "version":
                raise
            return True  # a malformed message is dropped; the stream's re-fetch recovers
        if isinstance(message, (Info, Reply, ErrorReply, DepthResult)):
            if isinstance(message, ErrorReply) and message.code == "version":
                raise ProtocolError(message.message, "version")
            self._replies[req] = message
        elif isinstance(message, (Accepted, Progress, Frame, Done, JobFailed)):
            if isinstance(message, Accepted) and req is not None:
                self._replies[req] = message
            self._events[message.job_id].append(message)
        return True

    def _unavailable(self, detail: str | None = None) -> NoReturn:
        raise ServerUnavailable(
            (detail or f"no das server answered at {self.address} within {self.timeout:g} s")
            + "; start one with `python -m das_server --backend preview` (or check --server and --keys)"
        )


# -- a job's result ---------------------------------------------------------------------------


class JobFailedError(DasError):
    """The server reported that a job failed or was cancelled; `failure` is its `JobFailed` event."""

    def __init__(self, failure: JobFailed) -> None:
        ended = "was cancelled" if failure.code == "cancelled" else f"failed ({failure.code})"
        super().__init__(f"job {failure.job_id} {ended}: {failure.message}")
        self.failure = failure


@dataclass(frozen=True)
class JobResult:
    """A finished job: its frames in index order, uint8 [T, H, W, 3], and the `Done` that ended it."""

    frames: np.ndarray
    done: Done


def collect_frames(events: Iterable[Event], on_event: Callable[[Event], None] | None = None) -> JobResult:
    """Gather a job's frames from its events (`DasClient.events` or `fetch`) until `Done`.

    `on_event` sees each `Accepted`, `Progress` and `Frame` as it arrives (progress bars, frames saved
    as they come). A frame sent again replaces the earlier one; the client has checked the frames
    against the server's checksum before it yields `Done`. Raises `JobFailedError` for a failed or
    cancelled job and `DasError` when the stream ends without all of the job's frames.
    """
    frames: dict[int, np.ndarray] = {}
    for event in events:
        if isinstance(event, JobFailed):
            raise JobFailedError(event)
        if isinstance(event, Done):
            missing = [index for index in range(event.num_frames) if index not in frames]
            if missing or event.num_frames < 1:
                received = event.num_frames - len(missing)
                raise DasError(f"job {event.job_id} ended with {received} of {event.num_frames} frames; fetch it again")
            return JobResult(np.stack([frames[index] for index in range(event.num_frames)]), event)
        if isinstance(event, Frame):
            frames[event.index] = event.image
        if on_event is not None:
            on_event(event)
    raise DasError("the job's event stream ended before its result; fetch the job again")
