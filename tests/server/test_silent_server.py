"""A server that never answers, or stops answering mid-job: the CLI says so within --timeout and what to do."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from PIL import Image

from das_core.cli import main as das_main
from das_core.tracking.video import read_video, write_mp4
from das_core.wire.keys import keygen
from tests.server.conftest import REPO, ProcessServer, ThreadServer, free_port, make_request


def _inputs(tmp_path) -> list[str]:
    """`das generate` arguments for a small job: a reference image, a tracking video, a prompt."""
    request = make_request(3)
    image, tracking = tmp_path / "ref.png", tmp_path / "track.mp4"
    Image.fromarray(request.image).save(image)
    write_mp4(tracking, request.tracking, fps=24)
    return ["--image", str(image), "--tracking", str(tracking), "--prompt", "a box"]


def test_fetch_with_no_server_listening_says_so_within_the_timeout(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "das_core", "fetch", "some-job", "--server", address, "--timeout", "1"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert time.monotonic() - started < 10  # Python's start-up included
    assert result.returncode == 1
    assert f"no das server answered at {address} within 1 s" in result.stderr
    assert "python -m das_server" in result.stderr


def test_generate_says_when_its_server_dies_mid_job_and_fetch_gets_the_job_after_a_restart(tmp_path):
    keys = tmp_path / "keys"
    keygen(keys)
    state, port = tmp_path / "state", free_port()
    server = ProcessServer(state, port, "--keys", str(keys), module="tests.server.held_server")
    log, out = tmp_path / "generate.log", tmp_path / "out.mp4"
    command = [sys.executable, "-m", "das_core", "generate", *_inputs(tmp_path), "--job-id", "held", "-o", str(out)]
    connection = ["--server", server.address, "--keys", str(keys), "--timeout", "1"]
    with open(log, "w") as stderr:
        client = subprocess.Popen([*command, *connection], cwd=REPO, stderr=stderr, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "job held accepted" not in log.read_text():
            assert client.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(2.5)  # the job runs without news for longer than --timeout; the server still answers
        assert client.poll() is None, log.read_text()
        server.kill()
        killed = time.monotonic()
        assert client.wait(20) == 1
        assert time.monotonic() - killed < 4
    finally:
        if client.poll() is None:
            client.kill()
        server.kill()
    text = log.read_text()
    assert f"the das server at {server.address} stopped answering" in text, text
    assert f"`das fetch held --server {server.address} --keys {keys}`" in text, text

    restarted = ProcessServer(state, port, "--backend", "preview", "--keys", str(keys))
    try:
        assert re.search(r"resuming 1 job$", restarted.log.read_text(), re.MULTILINE), restarted.log.read_text()
        assert das_main(["fetch", "held", "-o", str(out), *connection]) == 0
        assert read_video(out).shape == (49, 48, 72, 3)
    finally:
        assert restarted.terminate() == 0


def test_detach_names_the_server_and_keys_to_fetch_with(tmp_path, capsys):
    keys = tmp_path / "keys"
    keygen(keys, "bob")
    server = ThreadServer(tmp_path / "state", keys_dir=keys)
    try:
        connection = ["--server", server.address, "--keys", str(keys), "--key-name", "bob"]
        assert das_main(["generate", *_inputs(tmp_path), "--detach", *connection]) == 0
    finally:
        server.stop()
    captured = capsys.readouterr()
    job_id = captured.out.strip().splitlines()[-1]
    assert f"`das fetch {job_id} --server {server.address} --keys {keys} --key-name bob`" in captured.err
