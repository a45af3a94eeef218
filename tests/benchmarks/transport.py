"""Transport benchmark: submit->accepted latency, 49-frame 720x480 streaming, server overhead per job,
preview backend speed. Loopback, server in a thread of this process (one clock for both ends).

Run: python tests/benchmarks/transport.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from das_core.wire.client import DasClient, Done, Frame
from das_core.wire.protocol import Accepted, ErrorReply, Submit, decode, encode
from das_server.backends.preview import PreviewBackend
from das_server.config import ServerConfig
from das_server.server import Server

DAS_RUN_S = 126.0  # 50 steps of DaS on one H100 (spec section 5: ~90 s for CogVideoX x 1.4)


class ReadyFrames:
    """A backend whose 49 frames of 720x480 exist at once (like DaS right after the VAE decode)."""

    name = "bench"

    def __init__(self) -> None:
        rng = np.random.default_rng(0)  # smooth picture + mild noise, roughly like a decoded video frame
        y, x = np.mgrid[0:480, 0:720]
        smooth = np.stack([x * 255 // 720, y * 255 // 480, (x + y) % 256], axis=-1)
        base = np.clip(smooth + rng.integers(-8, 8, smooth.shape), 0, 255).astype(np.uint8)
        self.frames = [np.roll(base, i, axis=1) for i in range(49)]
        self.ready_at: dict[str, float] = {}

    def describe(self) -> dict:
        return {"backend": "bench", "model": "none", "device": "cpu", "preview": False}

    def generate(self, request, control):
        control.progress("denoise", 1, 1)
        self.ready_at[request.job_id] = time.perf_counter()
        yield from self.frames


def tracking_request(seed: int):
    from tests.server.conftest import make_request

    return make_request(seed, height=480, width=720)


def start(backend, codec: str, state: Path) -> tuple[Server, threading.Thread]:
    server = Server(ServerConfig(state_dir=state, bind="tcp://127.0.0.1:0", result_codec=codec), backend)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    server.ready.wait(20)
    return server, thread


def bench_accept(address: str, repeats: int) -> list[float]:
    submit = Submit.from_request(tracking_request(1), "template")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(address)
    times = []
    for index in range(repeats):
        parts = encode(dataclasses.replace(submit, job_id=f"accept-{index}", client=f"bench-{index}"), req=index)
        started = time.perf_counter()
        sock.send_multipart(parts, copy=False)
        while True:
            message, req = decode(sock.recv_multipart())
            if isinstance(message, Accepted) and req == index:
                break
            if isinstance(message, ErrorReply):
                raise SystemExit(f"submit refused: {message.message}")
        times.append(time.perf_counter() - started)
    sock.close(linger=0)
    return times


def bench_stream(address: str, backend: ReadyFrames, repeats: int) -> tuple[list[float], list[float]]:
    stream, total = [], []
    with DasClient(address, timeout=60) as client:
        request = tracking_request(2)
        for index in range(repeats):
            request.job_id = f"stream-{index}"
            started = time.perf_counter()
            job_id = client.submit(request)
            count = 0
            for event in client.events(job_id, timeout=60):
                count += isinstance(event, Frame)
                if isinstance(event, Done):
                    finished = time.perf_counter()
            assert count == 49
            stream.append(finished - backend.ready_at[job_id])
            total.append(finished - started)
    return stream, total


def bench_preview(repeats: int) -> list[float]:
    class Control:
        def progress(self, *args):
            pass

        def should_stop(self):
            return False

    request = tracking_request(3)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        assert len(list(PreviewBackend().generate(request, Control()))) == 49
        times.append(time.perf_counter() - started)
    return times


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, n={len(values)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("raw", "png"):
            backend = ReadyFrames()
            server, thread = start(backend, codec, Path(tmp) / codec)
            accept = bench_accept(server.bound_address, args.repeats * 2)
            time.sleep(0.5)
            # wait for the accept jobs to drain so the stream runs alone
            with DasClient(server.bound_address) as client:
                while client.status().info.queue_length:
                    time.sleep(0.1)
            stream, total = bench_stream(server.bound_address, backend, args.repeats)
            server.stop()
            thread.join()
            print(f"[{codec} results] submit->accepted (49x720x480 PNG tracking): {summary(accept)}")
            print(f"[{codec} results] 49 frames 720x480 ready -> all received + checksum ok: {summary(stream)}")
            overhead = statistics.median(total)
            print(
                f"[{codec} results] server overhead per job (submit->done, zero-time model): "
                f"{overhead * 1000:.0f} ms = {overhead / DAS_RUN_S * 100:.2f}% of a {DAS_RUN_S:.0f} s DaS run"
            )
    print(f"preview backend, 49 frames 720x480: {summary(bench_preview(args.repeats))}")


if __name__ == "__main__":
    main()
