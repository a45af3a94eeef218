"""`das tiny-model` and `das infer` end to end on real files (MP4 tracking video, PNG image, MP4 out)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from das_core.cli import main
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH
from das_core.tracking import video
from tests.scenes.conftest import gradient_image, square_tracks


def test_tiny_model_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["tiny-model", str(tmp_path)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_infer_end_to_end_on_the_tiny_model(tmp_path, tiny_dir, capsys):
    rng = np.random.default_rng(1)
    # 30 frames of 200 x 120: resampled to 49 and letterboxed to 96 x 64 by `das infer`.
    tracking_path = video.write_mp4(tmp_path / "tracking.mp4", rng.integers(0, 256, (30, 120, 200, 3), np.uint8))
    image_dir = tmp_path / "image"
    video.write_png_dir(image_dir, rng.integers(0, 256, (1, 100, 100, 3), np.uint8))
    output = tmp_path / "out" / "result.mp4"
    args = [
        "infer",
        "--prompt", "a red cube moving",
        "--model_path", str(tiny_dir),
        "--tracking_path", str(tracking_path),
        "--image_or_video_path", str(next(image_dir.iterdir())),
        "--generate_type", "i2v",
        "--num_inference_steps", "2",
        "--guidance_scale", "6",
        "--seed", "42",
        "--fps", "8",
        "--output_path", str(output),
        "--offload", "none",
        "--dtype", "float32",
        "--device", "cpu",
        "--tracking_normalization", "reference",
        "--height", str(TINY_HEIGHT),
        "--width", str(TINY_WIDTH),
    ]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out
    assert "step" in captured.err and "2/2" in captured.err  # the tqdm bar: steps, rate and ETA
    frames = video.read_video(output)
    assert frames.shape == (49, TINY_HEIGHT, TINY_WIDTH, 3)
    assert video.video_info(output).fps == pytest.approx(8.0)


def test_infer_at_a_size_the_model_cannot_make_fails_in_one_line(tmp_path, tiny_dir, capsys):
    rng = np.random.default_rng(2)
    tracking_path = video.write_mp4(tmp_path / "t.mp4", rng.integers(0, 256, (10, 64, 96, 3), np.uint8))
    code = main(
        ["infer", "--prompt", "x", "--model_path", str(tiny_dir), "--tracking_path", str(tracking_path),
         "--image_or_video_path", str(tracking_path), "--device", "cpu", "--dtype", "float32",
         "--height", "480", "--width", "720"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("das infer: error:") and "--height 64 --width 96" in err


def test_infer_without_a_size_uses_the_one_the_model_makes_and_says_so(tmp_path, tiny_dir, capsys):
    rng = np.random.default_rng(3)
    tracking_path = video.write_mp4(tmp_path / "t.mp4", rng.integers(0, 256, (10, 120, 200, 3), np.uint8))
    output = tmp_path / "out.mp4"
    code = main(
        ["infer", "--prompt", "x", "--model_path", str(tiny_dir), "--tracking_path", str(tracking_path),
         "--image_or_video_path", str(tracking_path), "--device", "cpu", "--dtype", "float32",
         "--num_inference_steps", "1", "--output_path", str(output)]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if line.startswith("das infer:") and "%|" not in line]  # not the progress bar
    assert len(notes) == 1 and f"makes {TINY_WIDTH} x {TINY_HEIGHT} video only" in notes[0]
    assert video.read_video(output).shape == (49, TINY_HEIGHT, TINY_WIDTH, 3)


def test_infer_missing_tracking_file_fails_before_loading(tmp_path, capsys):
    code = main(
        ["infer", "--prompt", "x", "--model_path", str(tmp_path / "no-model"), "--tracking_path",
         str(tmp_path / "missing.mp4"), "--image_or_video_path", str(tmp_path / "missing.png")]
    )  # fmt: skip
    assert code == 1
    assert "missing.mp4" in capsys.readouterr().err


def infer_tracks(tiny_dir, tracks, image, output, *extra: str) -> list[str]:
    return ["infer", "--prompt", "a square slides", "--model_path", str(tiny_dir), "--tracks", str(tracks),
            "--image_or_video_path", str(image), "--num_inference_steps", "1", "--device", "cpu",
            "--dtype", "float32", "--output_path", str(output), *extra]  # fmt: skip


def test_infer_tracks_makes_the_whole_shot(tmp_path, tiny_dir, capsys):
    square_tracks(25, fps=24.0).save(tmp_path / "tracks.npz")  # 9 model frames at 8 fps: one window
    image = gradient_image(tmp_path / "image.png")
    assert main(infer_tracks(tiny_dir, tmp_path / "tracks.npz", image, tmp_path / "every.mp4")) == 0
    captured = capsys.readouterr()
    assert "25 frames at 24 fps, 9 model frames at 8 fps" in captured.err and "window 1" not in captured.err
    assert "(25 frames at 24 fps: 9 model frames, 16 in-betweened, all encoded in" in captured.out
    assert video.read_video(tmp_path / "every.mp4").shape == (25, TINY_HEIGHT, TINY_WIDTH, 3)
    assert video.video_info(tmp_path / "every.mp4").fps == pytest.approx(24.0)

    arguments = infer_tracks(tiny_dir, tmp_path / "tracks.npz", image, tmp_path / "model.mp4", "--frames", "model")
    assert main(arguments) == 0
    assert video.read_video(tmp_path / "model.mp4").shape == (9, TINY_HEIGHT, TINY_WIDTH, 3)
    assert video.video_info(tmp_path / "model.mp4").fps == pytest.approx(8.0)


def test_infer_tracks_runs_a_long_shot_window_after_window(tmp_path, tiny_dir, capsys):
    square_tracks(101, fps=16.0).save(tmp_path / "tracks.npz")  # 51 model frames: windows 0-48 and 48-50
    image = gradient_image(tmp_path / "image.png")
    assert main(infer_tracks(tiny_dir, tmp_path / "tracks.npz", image, tmp_path / "every.mp4")) == 0
    err = capsys.readouterr().err
    assert "51 model frames at 8 fps in 2 windows" in err
    assert "window 1 of 2: model frames 0..48" in err and "window 2 of 2: model frames 48..50" in err
    assert video.read_video(tmp_path / "every.mp4").shape == (101, TINY_HEIGHT, TINY_WIDTH, 3)


def test_infer_tracks_mistakes_fail_before_loading(tmp_path, capsys):
    square_tracks(9, faces=False).save(tmp_path / "points.npz")
    tracking = video.write_mp4(tmp_path / "t.mp4", np.zeros((5, 64, 96, 3), np.uint8))
    common = ["--prompt", "x", "--model_path", str(tmp_path / "no-model"), "--image_or_video_path", str(tracking)]
    cases = [
        (["--tracks", str(tmp_path / "points.npz")], "has points only, no faces"),
        (["--tracks", str(tmp_path / "points.npz"), "--frames", "all"], "frames must be every or model, got 'all'"),
        (["--tracking_path", str(tracking), "--frames", "model"], "--frames applies to --tracks"),
        (["--tracking_path", str(tracking), "--tracks", str(tmp_path / "points.npz")], "one of them"),
    ]
    for arguments, message in cases:
        assert main(["infer", *common, *arguments]) == 1
        error = capsys.readouterr().err
        assert message in error and "no-model" not in error
