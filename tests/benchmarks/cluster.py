"""Benchmark: the Ray pool (`python -m das_server --ray`) with the simulated-GPU `sleep` backend.

Run: python tests/benchmarks/cluster.py [--jobs 16] [--size 720x480] [--repeats 10]
Starts a local Ray cluster and front ends in this process (one clock for all), jobs of 50 steps
(2 s each at the sleep backend's 0.04 s per step), 49 result frames of --size, raw results; the
clients (PNG submits, as the add-on sends) run in this process and share its cores:
1. throughput: --jobs jobs from 4 clients through the single-process server, then 1, 2 and 4
   workers, wall time to the last `done`;
2. dispatch overhead: submit -> first progress of a lone job on an idle server, a pool of one
   worker minus the single-process server (its worker thread), medians of --repeats;
3. recovery: a worker SIGKILLed while its job runs -> the job's first progress on another worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Keep the benchmark's local cluster on loopback (Ray reads this when it is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray

from das_core.wire.client import DasClient, Done, Progress
from das_core.wire.protocol import JobRequest
from das_server.backends.sleep import SleepBackend
from das_server.cluster.connect import ClusterConfig
from das_server.cluster.pool import Pool
from das_server.config import ServerConfig
from das_server.server import Server

STEPS = 50


class FrontEnd:
    """A server in a thread: with a pool of `workers`, or (None) the single-process worker thread."""

    def __init__(self, state: Path, workers: int | None) -> None:
        config = ServerConfig(state_dir=state, backend="sleep", bind="tcp://127.0.0.1:0", max_queue_per_client=64)
        self.pool = None
        if workers is None:
            self.server = Server(config, SleepBackend())
        else:
            self.pool = Pool(config, ClusterConfig(workers=workers))
            self.pool.load()
            self.server = Server(config, runner=self.pool.attach)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.server.ready.wait(30)
        self.address = self.server.bound_address
        if self.pool is not None:  # every worker warm before timing
            while sum(1 for w in self.pool.workers() if w.state == "idle") < workers:
                time.sleep(0.05)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(60)


def make_request(seed: int, width: int, height: int, job_id: str) -> JobRequest:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    tracking = np.zeros((49, height, width, 3), dtype=np.uint8)
    tracking[:, height // 4 : height // 2, width // 4 : width // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
    return JobRequest(f"bench {seed}", image, tracking, seed=seed, steps=STEPS, job_id=job_id)


def throughput(state: Path, workers: int | None, jobs: int, size: tuple[int, int]) -> float:
    """Seconds from the first submit to the last `done`, jobs from four clients."""
    front = FrontEnd(state, workers)
    requests = [make_request(n, *size, job_id=f"w{workers}-{n}") for n in range(jobs)]
    clients = [DasClient(front.address, timeout=60, name=f"artist{n}") for n in range(4)]
    started = time.perf_counter()
    for index, request in enumerate(requests):
        clients[index % 4].submit(request)
    for index, request in enumerate(requests):
        events = list(clients[index % 4].events(request.job_id, timeout=300))
        assert isinstance(events[-1], Done), events[-1]
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    front.stop()
    return elapsed


def first_progress(state: Path, workers: int | None, repeats: int, size: tuple[int, int]) -> float:
    """Median seconds from submit to the first progress of a lone job."""
    front = FrontEnd(state, workers)
    times = []
    with DasClient(front.address, timeout=60) as client:
        for n in range(repeats):
            request = make_request(n, *size, job_id=f"first-{workers}-{n}")
            started = time.perf_counter()
            client.submit(request)
            for event in client.events(request.job_id, timeout=60):
                if isinstance(event, Progress) and not times[n:]:
                    times.append(time.perf_counter() - started)
            time.sleep(0.5)  # the worker stores the result after `done`: let it be idle again
    front.stop()
    return statistics.median(times)


def recovery(state: Path, repeats: int, size: tuple[int, int]) -> list[float]:
    """Seconds from SIGKILL of the worker running a job to that job's first progress on another."""
    front = FrontEnd(state, 2)
    assert front.pool is not None
    times = []
    with DasClient(front.address, timeout=60) as client:
        for n in range(repeats):
            while sum(1 for w in front.pool.workers() if w.state == "idle") < 2:
                time.sleep(0.05)  # the last victim is back
            request = make_request(n, *size, job_id=f"victim-{n}")
            client.submit(request)
            events = client.events(request.job_id, timeout=60)
            for event in events:
                if isinstance(event, Progress) and event.step >= 5:
                    break
            (slot,) = [slot for slot in front.pool.slots if slot.job_id == request.job_id]
            assert slot.loaded is not None
            os.kill(slot.loaded.pid, signal.SIGKILL)
            killed = time.perf_counter()
            for event in events:
                if isinstance(event, Progress) and event.step == 0:
                    times.append(time.perf_counter() - killed)
                    break
            assert isinstance(list(events)[-1], Done)
    front.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--size", default="720x480", help="WIDTHxHEIGHT of the tracking video and results")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))
    assert len(size) == 2
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        print(f"{args.jobs} jobs of {STEPS} steps (2 s each), 49 frames {args.size}, raw results, 4 clients")
        alone = throughput(root / "t0", None, args.jobs, size)
        print(f"  single-process server (no Ray): {alone:6.2f} s, {args.jobs / alone:5.2f} jobs/s")
        seconds = {n: throughput(root / f"t{n}", n, args.jobs, size) for n in (1, 2, 4)}
        for n, elapsed in seconds.items():
            print(
                f"  {n} worker{'s' if n > 1 else ' '}: {elapsed:6.2f} s, {args.jobs / elapsed:5.2f} jobs/s, "
                f"{seconds[1] / elapsed:4.2f}x one worker (ideal {n}x, {args.jobs * 2.0 / n:.0f} s)"
            )
        single = first_progress(root / "single", None, args.repeats, size)
        pooled = first_progress(root / "pooled", 1, args.repeats, size)
        print(
            f"submit -> first progress, median of {args.repeats}: single-process {single * 1000:.1f} ms, "
            f"pool of one worker {pooled * 1000:.1f} ms, dispatch overhead {(pooled - single) * 1000:.1f} ms"
        )
        times = recovery(root / "recovery", 3, size)
        print(
            "worker SIGKILLed -> its job's first progress on another worker: "
            + ", ".join(f"{t:.2f}" for t in times)
            + f" s (max {max(times):.2f} s)"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
