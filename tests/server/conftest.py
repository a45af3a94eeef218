"""Fixtures for server tests: real servers on 127.0.0.1 (in a thread, or `python -m das_server` as a
subprocess where a test kills or restarts it) and small synthetic jobs with known answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from das_core.wire.protocol import JobRequest
from das_server.backends import load_backend
from das_server.backends.preview import PreviewBackend
from das_server.config import ServerConfig
from das_server.server import Server

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_request(seed: int, height: int = 48, width: int = 72, frames: int = 49, **kwargs) -> JobRequest:
    """A reference image and a tracking video whose covered square moves right one pixel per frame."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    tracking = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        covered = (np.abs(x - width // 3 - t % (width // 3)) < width // 6) & (np.abs(y - height // 2) < height // 4)
        tracking[t, ..., 0] = np.where(covered, (x * 255) // width, 0)
        tracking[t, ..., 1] = np.where(covered, (y * 255) // height, 0)
        tracking[t, ..., 2] = np.where(covered, 200, 0)
    return JobRequest(prompt=f"job {seed}", image=image, tracking=tracking, seed=seed, **kwargs)


class ThreadServer:
    """A `Server` running in a thread of the test process."""

    def __init__(
        self, state_dir: Path, backend: str = "preview", instance=None, bind: str = "tcp://127.0.0.1:0", **config
    ) -> None:
        self.config = ServerConfig(state_dir=state_dir, backend=backend, bind=bind, **config)
        self.backend = instance or load_backend(backend, model="", device=None, offload="none")
        self.server = Server(self.config, self.backend)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert self.server.ready.wait(20), "server did not start"
        self.address = self.server.bound_address

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def preview_server(tmp_path):
    server = ThreadServer(tmp_path / "state")
    yield server
    server.stop()


class GatedPreview(PreviewBackend):
    """The real preview backend, held before its first frame until `gate` is set.

    Only the timing is controlled (so "a job is still running" is certain on a busy machine);
    every frame still comes from the preview warp.
    """

    def __init__(self) -> None:
        self.gate = threading.Event()

    def generate(self, request, control):
        while not self.gate.wait(0.02):
            if control.should_stop():
                return
        yield from super().generate(request, control)


class Recording:
    """A real backend, instrumented: it records each request it is given and the frames it makes for it."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.window = backend.window
        self.requests: list[JobRequest] = []
        self.made: list[list[np.ndarray]] = []

    def describe(self) -> dict:
        return self.backend.describe()

    def generate(self, request, control):
        self.requests.append(request)
        self.made.append([])
        for frame in self.backend.generate(request, control):
            self.made[-1].append(frame)
            yield frame


class ProcessServer:
    """`python -m das_server` (or `module` taking its options) as a child process, for kill and restart tests."""

    def __init__(self, state_dir: Path, port: int, *args: str, module: str = "das_server") -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.log = state_dir.parent / f"server-{port}-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", module, "--bind", self.address, "--state-dir", str(state_dir), *args]
        self.process = subprocess.Popen(command, cwd=REPO, stderr=open(self.log, "w"), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while "listening on" not in self.log.read_text():
            assert self.process.poll() is None, f"server exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def run_server_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "das_server", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


class NoStop:
    """A job control that ignores progress and never stops: for calling a backend directly."""

    def progress(self, phase: str, step: int, total: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def preview_frames(request: JobRequest) -> list[np.ndarray]:
    """What the preview backend must produce for `request`, computed in the test process."""
    return list(load_backend("preview", model="", device=None, offload="none").generate(request, NoStop()))
