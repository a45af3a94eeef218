"""Backends (preview speed, tiny pipeline end to end), the job store, and the client CLI."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pytest

from das_core.cli import main as das_main
from das_core.tracking.video import read_video, write_mp4
from das_core.wire.client import DasClient, Done, Frame, Progress
from das_core.wire.protocol import Submit, encode
from das_server.backends.preview import PreviewBackend
from das_server.job_store import JobStore
from tests.server.conftest import ThreadServer, make_request


def test_preview_makes_49_frames_of_720x480_quickly():
    request = make_request(0, height=480, width=720)
    backend = PreviewBackend()

    class Control:
        steps: ClassVar[list] = []

        def progress(self, phase, step, total):
            self.steps.append((phase, step, total))

        def should_stop(self):
            return False

    started = time.perf_counter()
    frames = list(backend.generate(request, Control()))
    elapsed = time.perf_counter() - started
    assert len(frames) == 49 and frames[0].shape == (480, 720, 3) and frames[0].dtype == np.uint8
    assert Control.steps[-1] == ("warp", 49, 49)
    assert elapsed < 8.0  # target 3 s on 2 idle cores (matching and inpainting); the benchmark records the real figure
    assert backend.describe()["preview"] is True


def test_tiny_backend_end_to_end_resizes_back_to_the_request(tmp_path):
    pytest.importorskip("torch")
    server = ThreadServer(tmp_path / "state", backend="tiny")
    try:
        request = make_request(2, height=60, width=90, steps=2)
        with DasClient(server.address, timeout=30) as client:
            assert client.info().backend == "tiny"
            job_id = client.submit(request)
            events = list(client.events(job_id, timeout=120))
        frames = [e.image for e in events if isinstance(e, Frame)]
        steps = [e.step for e in events if isinstance(e, Progress) and e.phase == "denoise"]
        assert steps[-1] == 2 and isinstance(events[-1], Done)
        assert len(frames) == 49 and frames[0].shape == (60, 90, 3)
        assert events[-1].metadata["backend"] == "tiny" and events[-1].metadata["preview"] is False
        assert np.std(np.stack(frames).astype(float)) > 1.0  # real (random-weight) pixels, not a blank

        with DasClient(server.address, timeout=30) as client:  # cancel through pipe._interrupt
            job_id = client.submit(make_request(3, height=60, width=90, steps=40))
            before_cancel = []
            for event in client.events(job_id, timeout=120):
                before_cancel.append(event)
                if isinstance(event, Progress) and event.phase == "denoise" and event.step >= 1:
                    client.cancel(job_id)
                    break
            events = list(client.events(job_id, timeout=120))
        assert events[-1].code == "cancelled"
        # The cancel may land before the next progress message, so count steps from both streams.
        last_step = max(e.step for e in before_cancel + events if isinstance(e, Progress))
        assert last_step < 40 and not any(isinstance(e, Frame) for e in events)
    finally:
        server.stop()


def test_job_store_retention_by_age_then_size(tmp_path):
    store = JobStore(tmp_path)
    for number in range(3):
        submit = Submit.from_request(make_request(number, frames=2), f"job{number}")
        store.add(submit, encode(submit), "me")
        assert store.claim(f"job{number}")
        store.fail(f"job{number}", "backend_error", "x")
    now = time.time()
    assert store.prune(max_age_s=3600, max_bytes=1 << 40, now=now) == []
    assert store.prune(max_age_s=3600, max_bytes=1 << 40, now=now + 7200) == ["job0", "job1", "job2"]
    assert not (tmp_path / "jobs" / "job0").exists() and store.get("job0") is None
    for number in range(3, 6):
        submit = Submit.from_request(make_request(number, frames=2), f"job{number}")
        store.add(submit, encode(submit), "me")
        store.fail(f"job{number}", "cancelled", "x")
        time.sleep(0.01)
    size = store.get("job3").disk_bytes
    assert store.prune(max_age_s=3600, max_bytes=size * 2) == ["job3"]  # oldest goes first
    assert store.get("job5").state == "cancelled"


def test_das_generate_fetch_status_cli(tmp_path, capsys, monkeypatch):
    server = ThreadServer(tmp_path / "state")
    try:
        request = make_request(4, height=48, width=72, frames=60)
        image_path, tracking_path = tmp_path / "ref.png", tmp_path / "track.mp4"
        from PIL import Image

        Image.fromarray(request.image).save(image_path)
        write_mp4(tracking_path, request.tracking, fps=24)
        common = ["--server", server.address]
        out = tmp_path / "out" / "result.mp4"
        assert (
            das_main(
                [
                    "generate",
                    "--image",
                    str(image_path),
                    "--tracking",
                    str(tracking_path),
                    "--prompt",
                    "a box",
                    "-o",
                    str(out),
                    "--steps",
                    "3",
                    *common,
                ]
            )
            == 0
        )
        video = read_video(out)
        assert video.shape == (49, 48, 72, 3)
        assert len(list((tmp_path / "out" / "result_frames").glob("frame_*.png"))) == 49
        capsys.readouterr()

        assert (
            das_main(
                [
                    "generate",
                    "--image",
                    str(image_path),
                    "--tracking",
                    str(tracking_path),
                    "--prompt",
                    "again",
                    "--detach",
                    *common,
                ]
            )
            == 0
        )
        job_id = capsys.readouterr().out.strip().splitlines()[-1]
        assert len(job_id) == 32
        fetched = tmp_path / "fetched.mp4"
        assert das_main(["fetch", job_id, "-o", str(fetched), *common]) == 0
        assert read_video(fetched).shape == (49, 48, 72, 3)

        assert das_main(["status", *common]) == 0
        summary = capsys.readouterr().out
        assert "backend preview" in summary and "2 done" in summary
        assert das_main(["status", job_id, *common]) == 0
        assert f"job {job_id}: done, 49 frames" in capsys.readouterr().out
        monkeypatch.chdir(tmp_path)  # a failed fetch must leave no empty no-such-job_frames/ behind
        assert das_main(["fetch", "no-such-job", *common]) == 1
        assert "no job no-such-job" in capsys.readouterr().err
        assert not (tmp_path / "no-such-job_frames").exists()
    finally:
        server.stop()
    assert das_main(["status", "--server", server.address, "--timeout", "0.5"]) == 1
    assert "no das server answered" in capsys.readouterr().err


def test_das_generate_refuses_bad_inputs_before_contacting_a_server(tmp_path, capsys):
    from PIL import Image

    image_path = tmp_path / "ref.png"
    Image.fromarray(np.zeros((48, 72, 3), np.uint8)).save(image_path)
    nowhere = ["--server", "tcp://127.0.0.1:9", "--timeout", "0.5", "-o", str(tmp_path / "out.mp4")]
    cases = [
        (
            ["--image", str(tmp_path / "missing.png"), "--tracking", str(image_path), "--prompt", "a box"],
            "--image " + str(tmp_path / "missing.png") + ": no such image file",
        ),
        (["--image", str(image_path), "--tracking", str(image_path), "--prompt", "a box"], "is a single image"),
        (["--image", str(image_path), "--tracking", str(image_path), "--prompt", "  "], "--prompt is empty"),
    ]
    for arguments, message in cases:
        assert das_main(["generate", *arguments, *nowhere]) == 1
        error = capsys.readouterr().err
        assert message in error and "no das server answered" not in error


def test_das_keygen_makes_usable_keys(tmp_path, capsys):
    assert das_main(["keygen", str(tmp_path / "k"), "--client", "bob"]) == 0
    for name in ("server.key", "server.key_secret", "bob.key", "bob.key_secret", "allowed_clients/bob.key"):
        assert (tmp_path / "k" / name).is_file()
    assert das_main(["keygen", str(tmp_path / "k"), "--client", "bob"]) == 1  # never overwrite a key


def test_das_serve_takes_the_server_options(tmp_path, capsys):
    assert (
        das_main(["serve", "--backend", "preview", "--bind", "tcp://0.0.0.0:5555", "--state-dir", str(tmp_path / "s")])
        == 2
    )
    assert "refusing to bind tcp://0.0.0.0:5555" in capsys.readouterr().err
