"""A pool of workers on a local Ray cluster behind the usual front end: jobs spread over the workers,
fair order across clients, cancel, jobs of several windows, status, and the preview and tiny backends in Ray
workers."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

import time

import numpy as np

from das_core.cli import main as das_main
from das_core.wire.client import DasClient, Done, JobFailed, Progress
from das_core.wire.protocol import frame_digest, result_checksum
from tests.cluster.backends import sleep_checksum
from tests.cluster.conftest import PoolServer, frames_and_rest, wait_for
from tests.server.conftest import make_request, preview_frames


def test_jobs_spread_over_the_workers_and_run_at_the_same_time(ray_cluster, tmp_path):
    server = PoolServer(tmp_path / "state", workers=3)
    try:
        server.wait_ready(3)
        requests = [make_request(n, height=24, width=36, steps=15, job_id=f"job{n}") for n in range(6)]
        with DasClient(server.address) as client:
            for request in requests:
                client.submit(request)
            done = {}
            for request in requests:
                frames, other = frames_and_rest(client.events(request.job_id, timeout=60))
                assert isinstance(other[-1], Done), other[-1]
                assert [frame.index for frame in frames] == list(range(49))  # in order, each once
                np.testing.assert_array_equal(frames[30].image, request.tracking[30])
                assert other[-1].checksum == sleep_checksum(request)
                done[request.job_id] = client.status(request.job_id)
        assert {status.metadata["worker"] for status in done.values()} == {"worker-0", "worker-1", "worker-2"}
        starts = sorted(status.started for status in done.values())
        shortest = min(status.metadata["seconds"] for status in done.values())
        assert starts[2] - starts[0] < shortest  # three ran at once
    finally:
        server.stop()


def test_clients_take_turns_and_positions_follow_that_order(ray_cluster, tmp_path):
    server = PoolServer(tmp_path / "state", workers=2)
    try:
        server.wait_ready(2)
        with DasClient(server.address, name="batch") as batch, DasClient(server.address, name="artist") as artist:
            batch_ids = [batch.submit(make_request(n, height=24, width=36, steps=25, job_id=f"b{n}")) for n in range(5)]
            wait_for(lambda: batch.status().jobs.get("running") == 2, what="two jobs running")
            single = artist.submit(make_request(9, height=24, width=36, steps=5, job_id="single"))
            assert artist.status(single).position == 2  # behind the two running, ahead of the batch
            assert [batch.status(job_id).position for job_id in batch_ids[2:]] == [3, 4, 5]
            for job_id in [*batch_ids, single]:
                assert isinstance(list(batch.events(job_id, timeout=60))[-1], Done)
            started = {job_id: batch.status(job_id).started for job_id in [*batch_ids, single]}
        order = sorted(started, key=started.__getitem__)
        assert order.index("single") < order.index("b2")
        assert [job_id for job_id in order if job_id != "single"] == batch_ids
    finally:
        server.stop()


def test_cancel_reaches_a_running_job_at_its_next_step_and_two_windows_run_next(ray_cluster, tmp_path):
    server = PoolServer(tmp_path / "state", workers=1)
    try:
        with DasClient(server.address) as client:
            job_id = client.submit(make_request(1, height=24, width=36, steps=200))  # 8 s if not stopped
            events = client.events(job_id, timeout=30)
            for event in events:
                if isinstance(event, Progress) and event.step >= 2:
                    break
            cancelled_at = time.monotonic()
            assert client.cancel(job_id).state == "cancelling"
            frames, other = frames_and_rest(events)
            assert time.monotonic() - cancelled_at < 2.0
            assert isinstance(other[-1], JobFailed) and other[-1].code == "cancelled" and not frames
            assert max(e.step for e in other if isinstance(e, Progress)) < 200
            assert client.status(job_id).state == "cancelled"
            later = make_request(2, height=24, width=36, steps=2, windows=(25, 24))  # the worker goes on
            frames, other = frames_and_rest(client.events(client.submit(later), timeout=30))
            assert isinstance(other[-1], Done) and other[-1].metadata["windows"] == [25, 24]
            # Two windows in the actor: the sleep backend returns each window's control, the shared frame once.
            assert len(frames) == 48
            np.testing.assert_array_equal(frames[25].image, later.tracking[26])
    finally:
        server.stop()


def test_status_and_info_describe_the_workers(ray_cluster, tmp_path, capsys):
    server = PoolServer(tmp_path / "state", workers=2)
    try:
        server.wait_ready(2)
        with DasClient(server.address) as client:
            assert client.info().workers == 2
            job_id = client.submit(make_request(1, height=24, width=36, steps=2))
            assert isinstance(list(client.events(job_id, timeout=30))[-1], Done)
            wait_for(lambda: sum(w.jobs_done for w in client.status().pool) == 1, what="the job counted")
            pool = client.status().pool
        assert [worker.name for worker in pool] == ["worker-0", "worker-1"]
        assert all(worker.backend == "sleep" and worker.node and worker.state == "idle" for worker in pool)
        (worker,) = [worker for worker in pool if worker.jobs_done]
        assert 0.05 < worker.seconds_per_job < 10
        assert das_main(["status", "--server", server.address]) == 0
        out = capsys.readouterr().out
        assert "workers: 2 ready of 2" in out and f"worker-0  {pool[0].node}" in out and "idle" in out
    finally:
        server.stop()


def test_preview_and_tiny_backends_run_in_workers(ray_cluster, tmp_path):
    request = make_request(3, height=60, width=90, steps=2)
    preview = PoolServer(tmp_path / "preview", backend="preview", workers=1)
    try:
        with DasClient(preview.address) as client:
            frames, other = frames_and_rest(client.events(client.submit(request), timeout=60))
        expected = preview_frames(request)
        assert other[-1].checksum == result_checksum([frame_digest(frame) for frame in expected])
        np.testing.assert_array_equal(frames[48].image, expected[48])
    finally:
        preview.stop()
    pytest.importorskip("diffusers")
    tiny = PoolServer(tmp_path / "tiny", backend="tiny", workers=1)
    try:
        with DasClient(tiny.address) as client:
            frames, other = frames_and_rest(client.events(client.submit(request), timeout=120))
        assert isinstance(other[-1], Done) and other[-1].metadata["backend"] == "tiny"
        assert len(frames) == 49 and frames[0].image.shape == (60, 90, 3)
        assert [e.step for e in other if isinstance(e, Progress) and e.phase == "denoise"][-1] == 2
    finally:
        tiny.stop()
