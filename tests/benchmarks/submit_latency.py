"""Benchmark: from "the add-on sends the job" to the first progress message, per image codec, on loopback.

Run: python tests/benchmarks/submit_latency.py [--repeats 5]
The tracking video is a 49-frame 720x480 render of a spinning 32 k-vertex sphere (mostly black, like
an artist's scene). Measures the client's encoding (png, zlib, raw) and wire size, then against a
preview server in a thread of this process (one clock for both ends): submit -> accepted, and
accepted -> first progress with the server's steps after the worker claims the job (read the stored
submit, decode the images, the backend's first frame).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from render import moving_tracks, uv_sphere

from das_core.tracking.render import render_tracking
from das_core.wire import protocol
from das_core.wire.client import DasClient
from das_core.wire.protocol import EncodedImage, JobRequest, Progress
from das_server import job_store, worker
from das_server.backends.preview import PreviewBackend
from das_server.config import ServerConfig
from das_server.server import Server

CODECS = ("png", "zlib", "raw")
STEPS = ("claim", "load_submit", "to_request", "first_progress")


def timed(owner, name: str, marks: dict) -> None:
    """Wrap `owner.name` so each call records its end time in `marks[name]` (the server's steps)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        marks.setdefault(name, time.perf_counter())
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    vertices, faces = uv_sphere(256, 128)
    tracking = render_tracking(moving_tracks(vertices, faces, 4.0), "mesh", 49)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 720, 3), dtype=np.uint8)  # a reference photo compresses poorly: worst case
    print(f"tracking video {tracking.shape}, {(tracking.max(axis=-1) > 0).mean():.0%} of pixels drawn")
    for codec in CODECS:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            encoded = [EncodedImage.encode(frame, codec) for frame in tracking]
            times.append(time.perf_counter() - started)
        size = sum(len(item.data) for item in encoded) / 1e6
        print(
            f"[{codec}] client encodes 49 frames: median {statistics.median(times) * 1000:.0f} ms, {size:.1f} MB on the wire"
        )

    marks: dict = {}
    timed(job_store.JobStore, "claim", marks)
    timed(job_store.JobStore, "load_submit", marks)
    timed(protocol.Submit, "to_request", marks)
    emit = worker.Worker.emit

    def emit_marked(self, event):
        if isinstance(event, Progress):
            marks.setdefault("first_progress", time.perf_counter())
        return emit(self, event)

    worker.Worker.emit = emit_marked
    with tempfile.TemporaryDirectory() as state:
        server = Server(ServerConfig(state_dir=Path(state), bind="tcp://127.0.0.1:0"), PreviewBackend())
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        server.ready.wait(20)
        with DasClient(server.bound_address, timeout=30) as client:
            for codec in CODECS:
                rows = []
                for index in range(args.repeats):
                    marks.clear()
                    request = JobRequest("a bench", image, tracking, job_id=f"{codec}{index:028d}")
                    started = time.perf_counter()
                    client.submit(request, codec=codec)
                    accepted = time.perf_counter()
                    for event in client.events(request.job_id, timeout=30):
                        if isinstance(event, Progress):
                            break
                    received = time.perf_counter()
                    steps = [marks[later] - marks[earlier] for earlier, later in itertools.pairwise(STEPS)]
                    rows.append([accepted - started, received - accepted, *steps])
                    for _ in client.events(request.job_id, timeout=30):
                        pass  # let it finish before the next
                median = [statistics.median(column) * 1000 for column in zip(*rows)]
                print(
                    f"[{codec}] encode+submit -> accepted {median[0]:.0f} ms; accepted -> first progress "
                    f"{median[1]:.0f} ms, of which after the worker claimed it: read the submit {median[2]:.0f}, "
                    f"decode the images {median[3]:.0f}, the backend's first frame {median[4]:.0f}; "
                    f"medians of {args.repeats}"
                )
        server.stop()
        thread.join()


if __name__ == "__main__":
    main()
