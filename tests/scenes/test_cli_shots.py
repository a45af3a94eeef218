"""`das generate --tracks` and `das fetch --tracks`: whole shots through a real preview server (in a thread,
real ZeroMQ on 127.0.0.1, real MP4s): every timeline frame at the tracks' rate, or the model's frames."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking.video import read_video, video_info, write_mp4
from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.client import DasClient
from das_server.backends.preview import PreviewBackend
from tests.scenes.conftest import gradient_image, square_tracks
from tests.server.conftest import ThreadServer, free_port


@pytest.fixture
def shot(tmp_path):
    """(tracks.npz, image.png): 13 frames at 24 fps, which DaS (8 fps) makes as timeline frames 0, 3, ..., 12."""
    square_tracks(13, fps=24.0).save(tmp_path / "tracks.npz")
    return tmp_path / "tracks.npz", gradient_image(tmp_path / "image.png")


@pytest.fixture
def server(tmp_path):
    server = ThreadServer(tmp_path / "state")
    yield server
    server.stop()


def generate(tracks, image, output, server, *extra: str) -> int:
    return main(["generate", "--tracks", str(tracks), "--image", str(image), "--prompt", "a square slides",
                 "-o", str(output), "--server", server.address, *extra])  # fmt: skip


def test_generate_makes_every_timeline_frame_or_the_models(tmp_path, shot, server, capsys):
    tracks, image = shot
    assert generate(tracks, image, tmp_path / "every.mp4", server) == 0
    err = capsys.readouterr().err
    assert "13 frames at 24 fps, 5 model frames at 8 fps" in err
    assert "(13 frames at 24 fps: 5 model frames, 8 in-betweened, all encoded in" in err
    every = read_video(tmp_path / "every.mp4")
    assert every.shape == (13, DAS_WINDOW.height, DAS_WINDOW.width, 3)
    assert video_info(tmp_path / "every.mp4").fps == pytest.approx(24.0)
    model_frames = read_video(tmp_path / "every_frames")
    assert len(model_frames) == 5  # the PNGs as they arrived: one per model frame

    assert generate(tracks, image, tmp_path / "model.mp4", server, "--frames", "model") == 0
    assert "(5 frames at 8 fps)" in capsys.readouterr().err
    model = read_video(tmp_path / "model.mp4")
    assert len(model) == 5 and video_info(tmp_path / "model.mp4").fps == pytest.approx(8.0)
    # The model frames are timeline frames 0, 3, 6, 9 and 12 of the whole shot (up to H.264 loss).
    for index, key in enumerate((0, 3, 6, 9, 12)):
        assert np.abs(every[key].astype(int) - model[index]).mean() < 3.0
    assert np.abs(every[1].astype(int) - every[0]).mean() > 0.1  # in-betweens move on from the key

    with DasClient(server.address) as client:
        jobs = [client.status(job.job_id) for job in client.list_jobs()]
    assert sorted(job.frames_done for job in jobs) == [5, 5]  # the server made the model frames only
    assert {job.metadata["fps"] for job in jobs} == {DAS_WINDOW.fps}


def test_fetch_with_the_tracks_makes_the_whole_shot(tmp_path, shot, server, capsys):
    tracks, image = shot
    assert generate(tracks, image, tmp_path / "unused.mp4", server, "--frames", "model", "--detach") == 0
    captured = capsys.readouterr()
    job_id = captured.out.strip().splitlines()[-1]
    assert f"das fetch {job_id} --tracks {tracks} --frames model" in captured.err

    fetch = ["fetch", job_id, "--server", server.address]
    assert main([*fetch, "--tracks", str(tracks), "-o", str(tmp_path / "whole.mp4")]) == 0
    assert read_video(tmp_path / "whole.mp4").shape[0] == 13
    assert main([*fetch, "-o", str(tmp_path / "model.mp4")]) == 0  # without tracks: the model's frames
    assert len(read_video(tmp_path / "model.mp4")) == 5
    assert video_info(tmp_path / "model.mp4").fps == pytest.approx(8.0)
    capsys.readouterr()

    square_tracks(25, fps=24.0).save(tmp_path / "other.npz")  # 9 model frames, not this job's 5
    assert main([*fetch, "--tracks", str(tmp_path / "other.npz"), "-o", str(tmp_path / "bad.mp4")]) == 1
    error = capsys.readouterr().err
    assert "5 frames came back for a shot of 9 model frames" in error and "the tracks the job was made from" in error
    assert not (tmp_path / "bad.mp4").exists()


def test_bad_frames_settings_are_named_before_the_server_is_asked(tmp_path, shot, capsys):
    tracks, image = shot
    nowhere = ["--server", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5"]
    common = ["--image", str(image), "--prompt", "p", "-o", str(tmp_path / "o.mp4"), *nowhere]
    square_tracks(13, faces=False).save(tmp_path / "points.npz")
    sampled = square_tracks(13)
    sampled.frame_numbers = np.arange(13, dtype=np.int32) * 4 + 1  # every 4th scene frame, as old exports were
    sampled.save(tmp_path / "sampled.npz")
    tracking = write_mp4(tmp_path / "tracking.mp4", np.zeros((5, 64, 96, 3), np.uint8))
    cases = [
        (["--tracks", str(tracks), "--frames", "all"], "frames must be every or model, got 'all'"),
        (["--tracks", str(tmp_path / "points.npz")], "has points only, no faces"),
        (["--tracks", str(tmp_path / "points.npz")], "use --frames model for the model's frames only"),
        (["--tracks", str(tmp_path / "sampled.npz")], "holds 13 frames sampled from scene frames 1..49, not every"),
        (["--tracks", str(tmp_path / "sampled.npz"), "--frames", "model"], "export every frame of the range"),
        (["--tracking", str(tracking), "--frames", "model"], "--frames applies to --tracks"),
    ]
    for arguments, message in cases:
        assert main(["generate", *arguments, *common]) == 1
        error = capsys.readouterr().err
        assert message in error and "no das server answered" not in error
    assert main(["fetch", "a" * 32, "--frames", "model", *nowhere]) == 1
    assert "--frames applies with --tracks" in capsys.readouterr().err


class SmallWindowPreview(PreviewBackend):
    """The preview backend reporting a 5-frame window, so a short shot takes several windows."""

    window = ModelWindow(width=96, height=64, frames=5, fps=8.0)


def test_generate_splits_a_long_shot_into_windows(tmp_path, capsys):
    """Needs the server to run `JobRequest.windows` (one frame per model frame, windows sharing one)."""
    square_tracks(25, fps=24.0).save(tmp_path / "tracks.npz")  # 9 model frames: windows 0-4 and 4-8
    image = gradient_image(tmp_path / "image.png")
    server = ThreadServer(tmp_path / "state", instance=SmallWindowPreview())
    try:
        assert generate(tmp_path / "tracks.npz", image, tmp_path / "every.mp4", server) == 0
        assert "9 model frames at 8 fps in 2 windows" in capsys.readouterr().err
        assert read_video(tmp_path / "every.mp4").shape == (25, 64, 96, 3)
        assert generate(tmp_path / "tracks.npz", image, tmp_path / "model.mp4", server, "--frames", "model") == 0
        assert read_video(tmp_path / "model.mp4").shape == (9, 64, 96, 3)
    finally:
        server.stop()
