"""What a newcomer reads after a small mistake: the message names the mistake, not a symptom of it."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.cli import main as das_main
from das_core.tracking.video import write_mp4
from das_core.wire.client import DasClient, ServerError
from tests.server.conftest import GatedPreview, ThreadServer, free_port, make_request, run_server_cli


@pytest.mark.parametrize(
    "bind, message",
    [
        ("127.0.0.1:5555", "needs a scheme: tcp://127.0.0.1:5555"),
        ("tcp://127.0.0.1:99999", "port 99999 is invalid; use 1 to 65535"),
        ("tcp://127.0.0.1", "needs a host and a port: tcp://HOST:PORT"),
    ],
)
def test_server_refuses_a_bind_address_it_would_misread(tmp_path, bind, message):
    result = run_server_cli("--backend", "preview", "--bind", bind, "--state-dir", str(tmp_path / "s"), timeout=20)
    assert result.returncode == 2
    assert message in result.stderr and "encryption" not in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "server, message",
    [
        ("127.0.0.1:5555", "needs a scheme: tcp://127.0.0.1:5555"),
        ("tcp://127.0.0.1:99999", "port 99999 is invalid; use 1 to 65535"),
        ("tcp://127.0.0.1:0", "port 0 is invalid; use 1 to 65535"),
    ],
)
def test_client_refuses_a_server_address_it_would_misread(capsys, server, message):
    assert das_main(["status", "--server", server, "--timeout", "0.5"]) == 1
    error = capsys.readouterr().err
    assert message in error and "no das server answered" not in error


def test_generate_refuses_a_video_as_the_image(tmp_path, capsys):
    video, tracking = tmp_path / "clip.mp4", tmp_path / "track.mp4"
    write_mp4(video, np.full((5, 48, 72, 3), 90, np.uint8), fps=24)
    write_mp4(tracking, make_request(1).tracking, fps=24)
    nowhere = ["--server", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5"]
    arguments = ["generate", "--image", str(video), "--tracking", str(tracking), "--prompt", "a box", *nowhere]
    assert das_main(arguments) == 1
    error = capsys.readouterr().err
    assert f"--image {video} is a video (5 frames)" in error and "no das server answered" not in error


def test_refusals_count_in_words(tmp_path):
    server = ThreadServer(
        tmp_path / "state", instance=GatedPreview(), max_queue=2, max_queue_per_client=1, retention_days=1
    )
    try:
        with DasClient(server.address, name="one") as one, DasClient(server.address, name="two") as two:
            one.submit(make_request(1))
            with pytest.raises(ServerError, match=r"you already have 1 job queued or running"):
                one.submit(make_request(2))
            with pytest.raises(ServerError, match=r"finished jobs are kept 1 day\)"):
                list(one.fetch("nope"))
            two.submit(make_request(3))
            with DasClient(server.address, name="three") as three:
                with pytest.raises(ServerError, match=r"the server's queue is full \(2 jobs\)"):
                    three.submit(make_request(4))
    finally:
        server.stop()
