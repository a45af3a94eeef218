"""`python -m das_server` as a real process: SIGKILL and restart, start-up refusals, CURVE, the CLI."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from das_core.wire.client import DasClient, Done, Frame, ServerError, ServerUnavailable
from das_core.wire.keys import is_loopback, keygen, load_keys
from das_core.wire.protocol import frame_digest, result_checksum
from tests.server.conftest import (
    REPO,
    ProcessServer,
    ThreadServer,
    free_port,
    make_request,
    preview_frames,
    run_server_cli,
)


def test_sigkill_mid_queue_then_restart_completes_every_accepted_job(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    server = ProcessServer(state, port, "--backend", "preview")
    requests = [make_request(seed, height=240, width=360, job_id=f"job-{seed}") for seed in range(3)]
    with DasClient(server.address, timeout=20) as client:
        accepted = [client.submit(request) for request in requests]
        for event in client.events(accepted[0], timeout=30):
            if isinstance(event, Frame):
                break  # the first job is running, the others wait
        before = client.status().jobs
    server.kill()
    assert before.get("queued", 0) >= 1, before

    restarted = ProcessServer(state, port, "--backend", "preview")
    try:
        with DasClient(restarted.address, timeout=20) as client:
            for request, job_id in zip(requests, accepted):
                frames = {e.index: e.image for e in client.fetch(job_id, timeout=60) if isinstance(e, Frame)}
                status = client.status(job_id)
                assert status.state == "done" and len(frames) == 49
                expected = preview_frames(request)
                assert status.checksum == result_checksum([frame_digest(f) for f in expected])
                np.testing.assert_array_equal(frames[10], expected[10])
            assert client.status().jobs == {"done": 3}  # none lost, none run twice
    finally:
        assert restarted.terminate() == 0  # SIGTERM is a clean shutdown
    assert "resuming" in restarted.log.read_text()


def test_client_resends_and_waits_across_a_restart(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    server = ProcessServer(state, port, "--backend", "preview")
    with DasClient(server.address, timeout=30) as client:
        client.info()
        server.kill()  # the connection is gone; the client's socket reconnects by itself
        restarted = ProcessServer(state, port, "--backend", "preview")
        try:
            job_id = client.submit(make_request(9))
            events = list(client.events(job_id, timeout=30))
            assert isinstance(events[-1], Done)
            assert client.status().jobs == {"done": 1}  # re-sent submits did not run twice
        finally:
            restarted.terminate()


def test_non_loopback_bind_without_keys_refuses_to_start(tmp_path):
    result = run_server_cli(
        "--backend", "preview", "--bind", f"tcp://0.0.0.0:{free_port()}", "--state-dir", str(tmp_path / "s")
    )
    assert result.returncode == 2
    assert "das keygen" in result.stderr and "--insecure" in result.stderr
    assert not (tmp_path / "s").exists()


def test_das_backend_without_gpu_or_weights_names_the_preview_backend(tmp_path):
    result = run_server_cli(
        "--backend",
        "das",
        "--model",
        str(tmp_path / "no-weights"),
        "--bind",
        f"tcp://127.0.0.1:{free_port()}",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert result.returncode == 2
    assert "--backend preview" in result.stderr and "hf download EXCAI/Diffusion-As-Shader" in result.stderr


@pytest.mark.parametrize(
    "address, loopback",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:5", True),
        ("ipc:///tmp/x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.4:5555", False),
        ("tcp://eth0:1", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_curve_allows_listed_keys_and_refuses_others(tmp_path):
    keys = tmp_path / "keys"
    keygen(keys, "alice")
    stranger_dir = tmp_path / "stranger"
    keygen(stranger_dir, "mallory")  # a valid key pair the server never allowed
    server = ThreadServer(tmp_path / "state", keys_dir=keys)
    try:
        with DasClient(server.address, timeout=10, **load_keys(keys, "alice")) as alice:
            assert alice.info().backend == "preview"
            job_id = alice.submit(make_request(1))
            assert isinstance(list(alice.events(job_id, timeout=30))[-1], Done)
        stranger = load_keys(stranger_dir, "mallory")
        stranger["server_public_key"] = load_keys(keys, "alice")["server_public_key"]
        started = time.monotonic()
        with DasClient(server.address, timeout=1.0, **stranger) as mallory:
            with pytest.raises(ServerUnavailable):
                mallory.info()
        with DasClient(server.address, timeout=1.0) as plain:
            with pytest.raises(ServerUnavailable):
                plain.info()
        assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_warning_log_level_hides_info_and_an_internal_error_logs_its_traceback(tmp_path):
    state, log = tmp_path / "state", tmp_path / "server.log"
    address = f"tcp://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "das_server", "--backend", "preview", "--bind", address]
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [*command, "--state-dir", str(state), "--log-level", "WARNING"], cwd=REPO, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 60
        while True:  # "listening on" is an INFO line, so ask instead of reading the log
            try:
                with DasClient(address, timeout=1.0) as client:
                    client.info()
                break
            except ServerUnavailable:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        database = sqlite3.connect(state / "jobs.sqlite", isolation_level=None)
        database.execute("DROP TABLE jobs")  # the job store breaks under the running server
        database.close()
        with DasClient(address, timeout=10) as client:
            with pytest.raises(ServerError) as error:
                client.status()
            assert error.value.code == "internal"
        assert process.poll() is None  # it cost one reply, not the server
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    text = log.read_text()
    assert "ERROR das_server.server: internal error handling StatusRequest" in text
    assert "Traceback (most recent call last)" in text and "no such table: jobs" in text
    assert "listening on" not in text and " INFO " not in text


def test_debug_log_level_logs_each_request(tmp_path):
    server = ProcessServer(tmp_path / "state", free_port(), "--backend", "preview", "--log-level", "debug")
    try:
        with DasClient(server.address) as client:
            client.info()
    finally:
        assert server.terminate() == 0
    text = server.log.read_text()
    assert "INFO das_server.server: das server" in text and "listening on" in text
    assert "DEBUG das_server.server: Hello from" in text
