"""Faults in a pool on a local Ray cluster: a worker SIGKILLed mid-job, a worker dying while it loads,
the front end stopped (or SIGKILLed) with jobs running and started again."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

import os
import signal
import time

from das_core.wire.client import DasClient, Done, Frame
from tests.cluster.backends import DieOnce, SlowFrames, sleep_checksum
from tests.cluster.conftest import PoolServer, frames_and_rest, wait_for
from tests.server.conftest import ProcessServer, free_port, make_request


def test_a_worker_killed_mid_job_loses_nothing_and_sends_each_frame_once(ray_cluster, tmp_path):
    server = PoolServer(tmp_path / "state", workers=2, loader=SlowFrames)
    try:
        server.wait_ready(2)
        request = make_request(5, height=24, width=36, steps=1, job_id="victim")
        with DasClient(server.address, timeout=30) as client:
            client.submit(request)
            events = client.events("victim", timeout=60)
            received = []
            for event in events:
                if isinstance(event, Frame):
                    received.append(event.index)
                    if len(received) == 10:
                        break
            (slot,) = [slot for slot in server.pool.slots if slot.job_id == "victim"]
            os.kill(slot.loaded.pid, signal.SIGKILL)
            with DasClient(server.address) as watcher:  # while it starts again, status says why
                wait_for(
                    lambda: (
                        "died running job victim"
                        in str(next(w for w in watcher.status().pool if w.name == slot.label).error)
                    ),
                    what="the dead worker named in status",
                )
            frames, other = frames_and_rest(events)
        assert received + [frame.index for frame in frames] == list(range(49))  # each frame exactly once
        assert isinstance(other[-1], Done) and other[-1].checksum == sleep_checksum(request)
        assert other[-1].metadata["worker"] != slot.label  # finished by the other worker
        server.wait_ready(2)  # and the killed one is back
    finally:
        server.stop()


def test_a_worker_that_dies_while_loading_is_restarted_and_named_in_status(ray_cluster, tmp_path):
    server = PoolServer(tmp_path / "state", workers=2, loader=DieOnce(tmp_path / "died"))
    try:
        seen: list = []
        with DasClient(server.address) as client:
            wait_for(
                lambda: seen.extend(w for w in client.status().pool if w.state == "restarting") or seen,
                what="a worker restarting",
            )
            assert "failed to start" in seen[0].error and "retry 1 in 1 s" in seen[0].error
            server.wait_ready(2)
            assert client.status().pool[0].error is None
            ids = [client.submit(make_request(n, height=24, width=36, steps=2)) for n in range(2)]
            assert all(isinstance(list(client.events(job_id, timeout=30))[-1], Done) for job_id in ids)
    finally:
        server.stop()


def test_front_end_stopped_with_jobs_running_finishes_them_after_a_restart(ray_cluster, tmp_path):
    state = tmp_path / "state"
    requests = [make_request(n, height=24, width=36, steps=20, job_id=f"job{n}") for n in range(5)]
    first = PoolServer(state, workers=2)
    with DasClient(first.address) as client:
        for request in requests:
            client.submit(request)
        wait_for(lambda: client.status().jobs.get("running") == 2, what="two jobs running")
    first.stop()
    second = PoolServer(state, workers=2)
    try:
        with DasClient(second.address) as client:
            for request in requests:
                frames, other = frames_and_rest(client.fetch(request.job_id, timeout=60))
                assert isinstance(other[-1], Done) and other[-1].checksum == sleep_checksum(request)
                assert sorted(frame.index for frame in frames) == list(range(49))
            # `done` goes out before the job's row says so: wait for the store, then none lost, none run twice.
            wait_for(lambda: client.status().jobs == {"done": 5}, timeout=10, what="five jobs stored as done")
    finally:
        second.stop()


def test_front_end_sigkilled_mid_queue_then_restarted_from_the_command_line(ray_cluster, tmp_path):
    state, port = tmp_path / "state", free_port()
    args = ("--backend", "sleep", "--ray", ray_cluster, "--workers", "2")
    requests = [make_request(n, height=24, width=36, steps=20, job_id=f"job{n}") for n in range(4)]
    server = ProcessServer(state, port, *args)
    with DasClient(server.address, timeout=20) as client:
        # The server answers once one worker is warm; the second may still be loading.
        wait_for(lambda: client.info().workers == 2, what="both workers ready")
        for request in requests:
            client.submit(request)
        wait_for(lambda: client.status().jobs.get("running") == 2, what="two jobs running")
    server.kill()
    restarted = ProcessServer(state, port, *args)
    try:
        started = time.monotonic()
        with DasClient(restarted.address, timeout=20) as client:
            for request in requests:
                _, other = frames_and_rest(client.fetch(request.job_id, timeout=60))
                assert isinstance(other[-1], Done) and other[-1].checksum == sleep_checksum(request)
            wait_for(lambda: client.status().jobs == {"done": 4}, timeout=10, what="four jobs stored as done")
        assert time.monotonic() - started < 30
    finally:
        assert restarted.terminate() == 0
    assert "resuming 4 jobs" in restarted.log.read_text()
