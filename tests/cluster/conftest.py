"""Fixtures for cluster tests: one local Ray cluster per test module, and front ends (`Server` with a
`Pool`) in a thread of the test process, whose workers are real Ray actors in their own processes.

Each test module starts with `pytest.importorskip("ray")`, so the folder skips without Ray.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from das_core.wire.client import DasClient, Frame
from das_server.cluster.connect import ClusterConfig
from das_server.config import ServerConfig
from das_server.server import Server

REPO = Path(__file__).resolve().parents[2]
# Ray gives a new node this machine's network address unless told it runs no real cluster; the
# tests' cluster stays on loopback (read when ray is imported, so set here, before any test module).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster for the module; its address lets a front end in another process join."""
    import ray

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), before]))  # workers import this checkout
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, namespace="das-tests")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


class PoolServer:
    """A front end with a pool of `workers` on the test's Ray cluster, in a thread of this process."""

    def __init__(
        self,
        state_dir: Path,
        backend: str = "sleep",
        workers: int = 2,
        loader: Callable | None = None,
        bind: str = "tcp://127.0.0.1:0",
        **config,
    ) -> None:
        from das_server.cluster.pool import Pool

        self.config = ServerConfig(state_dir=state_dir, backend=backend, bind=bind, **config)
        self.pool = Pool(self.config, ClusterConfig(workers=workers), loader)
        self.pool.load()
        self.server = Server(self.config, runner=self.pool.attach)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert self.server.ready.wait(30), "server did not start"
        self.address = self.server.bound_address

    def wait_ready(self, count: int, timeout: float = 60) -> None:
        """Until `count` workers are idle or busy."""
        deadline = time.monotonic() + timeout
        while sum(1 for w in self.pool.workers() if w.state in ("idle", "busy")) < count:
            assert time.monotonic() < deadline, self.pool.workers()
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()


def frames_and_rest(events) -> tuple[list[Frame], list]:
    """A job's frames in arrival order (duplicates kept, to count them) and its other events."""
    frames, other = [], []
    for event in events:
        (frames if isinstance(event, Frame) else other).append(event)
    return frames, other


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


__all__ = ["DasClient", "PoolServer", "frames_and_rest", "wait_for"]
