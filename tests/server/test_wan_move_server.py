"""A tiny Wan-Move server end to end: info, point-track jobs, progress, cancel, wrong controls, `das generate`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from das_core.cli import main as das_main
from das_core.tracking.video import read_video
from das_core.tracking.window import WAN_MOVE_WINDOW
from das_core.wire.client import DasClient, JobFailed, Progress, ServerError, collect_frames
from das_core.wire.protocol import JobRequest, Limits
from das_server.backends import load_backend
from tests.server.conftest import Recording, ThreadServer, make_request, run_server_cli


def point_job(steps: int = 2, frames: int = 81, seed: int = 1) -> JobRequest:
    """A 96 x 64 image and 12 points moving right across it, the last two hidden from frame 40 on."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    start = np.stack(np.meshgrid(np.linspace(8, 40, 4), np.linspace(8, 56, 3)), -1).reshape(-1, 2)
    shift = np.linspace(0, 40, frames)[:, None, None] * np.array([1.0, 0.0])
    visibility = np.ones((frames, len(start)), bool)
    visibility[40:, -2:] = False
    tracks = (start[None] + shift).astype(np.float32)
    return JobRequest("a cat walks", image, point_tracks=tracks, visibility=visibility, steps=steps, seed=seed)


@pytest.fixture(scope="module")
def tiny_wan_move():
    return load_backend("tiny", model="wan-move", device=None, offload="none")


@pytest.fixture
def server(tmp_path, tiny_wan_move):
    server = ThreadServer(tmp_path / "state", backend="tiny", instance=tiny_wan_move, limits=Limits(max_frames=81))
    yield server
    server.stop()


def test_a_point_track_job_runs_end_to_end_at_the_request_size(server):
    with DasClient(server.address) as client:
        info = client.info()
        assert info.window == WAN_MOVE_WINDOW and info.backend == "tiny" and info.limits.max_frames == 81
        job_id = client.submit(point_job(steps=2))
        seen: list = []
        result = collect_frames(client.events(job_id, timeout=120), on_event=seen.append)
    assert result.frames.shape == (81, 64, 96, 3) and result.frames.dtype == np.uint8
    progress = [(event.phase, event.step, event.total) for event in seen if isinstance(event, Progress)]
    assert [step for phase, step, _ in progress if phase == "denoise"] == [0, 1, 2] and progress[-1][0] == "decode"
    assert result.done.metadata["model_size"] == [48, 32] and result.done.metadata["preview"] is False
    assert result.frames.std() > 1  # the VAE decoded something, not a constant


def test_a_shot_of_two_windows_follows_each_windows_own_points(tmp_path, tiny_wan_move):
    job = point_job(steps=1, frames=9)
    job.visibility[:] = False
    job.visibility[:5, :8] = True  # window 0 (frames 0-4): points 0-7; window 1 (frames 5-8): points 4-11
    job.visibility[5:, 4:] = True
    job.windows = (5, 4)
    backend = Recording(tiny_wan_move)
    server = ThreadServer(tmp_path / "state", backend="tiny", instance=backend, limits=Limits(max_frames=81))
    try:
        with DasClient(server.address) as client:
            result = collect_frames(client.events(client.submit(job), timeout=300))
    finally:
        server.stop()
    assert result.frames.shape == (5 + 4 - 1, 64, 96, 3) and result.done.metadata["windows"] == [5, 4]
    assert [len(made) for made in backend.made] == [5, 4]  # not stretched to the model's 81 frames
    first, second = backend.requests
    np.testing.assert_array_equal(first.point_tracks, job.point_tracks[:5, :8])
    np.testing.assert_array_equal(second.point_tracks, job.point_tracks[5:, 4:])
    assert second.visibility.all() and second.windows is None
    np.testing.assert_array_equal(second.image, result.frames[4])  # window 0's last frame


def test_a_running_job_is_cancelled_within_one_step(server):
    with DasClient(server.address) as client:
        job_id = client.submit(point_job(steps=40))
        steps_after_cancel = []
        cancelled = False
        for event in client.events(job_id, timeout=120):
            if isinstance(event, Progress) and event.step >= 1 and not cancelled:
                client.cancel(job_id)
                cancelled = True
            elif isinstance(event, Progress) and cancelled:
                steps_after_cancel.append(event.step)
            elif isinstance(event, JobFailed):
                assert event.code == "cancelled"
                break
    assert len(steps_after_cancel) <= 2  # the step running when cancel arrived, at most one more


def test_each_server_refuses_the_other_control_with_a_clear_error(server, preview_server):
    with DasClient(server.address) as client, pytest.raises(ServerError, match="follows point tracks") as caught:
        client.submit(make_request(0))
    assert caught.value.code == "wrong_control" and "das render-tracks --for wan-move" in str(caught.value)
    with DasClient(preview_server.address) as client, pytest.raises(ServerError) as caught:
        client.submit(point_job(frames=49))
    assert caught.value.code == "wrong_control" and "follows a DaS tracking video" in str(caught.value)


def test_das_generate_asks_the_server_and_sends_point_tracks(server, tmp_path, capsys):
    from PIL import Image

    from das_core.tracking.video import write_mp4

    job = point_job(frames=41)  # sampled up to the server's 81 frames
    folder = tmp_path / "points"
    folder.mkdir()
    np.save(folder / "tracks.npy", job.point_tracks[None])
    np.save(folder / "visibility.npy", job.visibility[None])
    Image.fromarray(job.image).save(tmp_path / "image.png")
    out = tmp_path / "result.mp4"
    common = ["--image", str(tmp_path / "image.png"), "--prompt", "a cat", "--server", server.address]
    assert das_main(["generate", "--point-tracks", str(folder), "--steps", "2", "-o", str(out), *common]) == 0
    assert read_video(out).shape == (81, 64, 96, 3)
    assert "(tiny, tiny wan-move" in capsys.readouterr().err

    write_mp4(tmp_path / "tracking.mp4", make_request(0).tracking, fps=8)
    assert das_main(["generate", "--tracking", str(tmp_path / "tracking.mp4"), *common]) == 1
    error = capsys.readouterr().err
    assert "follows point tracks, which --tracking does not give; pass --tracks TRACKS.npz" in error


def test_missing_wan_move_weights_name_the_download(tmp_path):
    result = run_server_cli(
        "--backend", "wan-move", "--model", str(tmp_path / "nothing"), "--device", "cpu",
        "--state-dir", str(tmp_path / "state"), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "hf download Ruihang/Wan-Move-14B-480P --local-dir weights/wan-move" in result.stderr


def test_tiny_refuses_an_unknown_model_and_offloads_are_checked():
    from das_server.backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="use --model das or --model wan-move"):
        load_backend("tiny", model="cogvideo", device=None, offload="none")
    with pytest.raises(BackendUnavailable, match="--offload sequential is not a mode of wan-move"):
        load_backend("wan-move", model=None, device=None, offload="sequential")
