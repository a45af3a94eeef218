"""`das infer --model wan-move` and `das convert` on the tiny Wan-Move model saved as the published layout."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from das_core.cli import main
from das_core.model.wan_move.tiny import TINY_HEIGHT, TINY_NUM_FRAMES, TINY_WIDTH, save_tiny_wan_move
from das_core.tracking.video import read_video
from tests.scenes.conftest import gradient_image, square_tracks


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    return save_tiny_wan_move(tmp_path_factory.mktemp("tiny-wan-move"), seed=0)


def test_infer_runs_wan_move_from_npy_tracks(tiny_folders, tmp_path, capsys):
    dit, base = tiny_folders
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    folder = tmp_path / "points"
    folder.mkdir()
    tracks = np.linspace([10.0, 20.0], [80.0, 40.0], 25, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    np.save(folder / "tracks.npy", tracks)
    np.save(folder / "visibility.npy", np.ones(tracks.shape[:3], bool))
    out = tmp_path / "out.mp4"
    arguments = [
        "infer", "--model", "wan-move", "--model_path", str(dit), "--base_model", str(base), "--prompt", "a cat",
        "--image_or_video_path", str(tmp_path / "image.png"), "--point_tracks", str(folder), "--device", "cpu",
        "--dtype", "float32", "--width", str(TINY_WIDTH), "--height", str(TINY_HEIGHT),
        "--num_frames", str(TINY_NUM_FRAMES), "--num_inference_steps", "2", "--output_path", str(out),
    ]  # fmt: skip
    assert main(arguments) == 0
    assert read_video(out).shape == (TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert "16 fps, Wan-Move" in capsys.readouterr().out

    assert main([*arguments[:-2], "--output_path", str(tmp_path / "x.mp4"), "--tracks", str(tmp_path / "t.npz")]) == 1
    assert "needs --tracks TRACKS.npz or --point_tracks DIR (one of them)" in capsys.readouterr().err


def test_infer_runs_wan_move_on_a_whole_shot_window_after_window(tiny_folders, tmp_path, capsys):
    dit, base = tiny_folders
    square_tracks(49, fps=32.0).save(tmp_path / "tracks.npz")  # 25 model frames at 16 fps: windows 0-12, 12-24
    image = gradient_image(tmp_path / "image.png")
    arguments = [
        "infer", "--model", "wan-move", "--model_path", str(dit), "--base_model", str(base), "--prompt", "a square",
        "--image_or_video_path", str(image), "--tracks", str(tmp_path / "tracks.npz"), "--device", "cpu",
        "--dtype", "float32", "--width", str(TINY_WIDTH), "--height", str(TINY_HEIGHT),
        "--num_frames", str(TINY_NUM_FRAMES), "--num_inference_steps", "1",
    ]  # fmt: skip
    assert main([*arguments, "--output_path", str(tmp_path / "every.mp4")]) == 0
    err = capsys.readouterr().err
    assert "25 model frames at 16 fps in 2 windows" in err and "window 2 of 2: model frames 12..24" in err
    assert read_video(tmp_path / "every.mp4").shape == (49, TINY_HEIGHT, TINY_WIDTH, 3)
    assert main([*arguments, "--output_path", str(tmp_path / "model.mp4"), "--frames", "model"]) == 0
    assert read_video(tmp_path / "model.mp4").shape == (25, TINY_HEIGHT, TINY_WIDTH, 3)


def test_convert_writes_a_diffusers_folder_that_loads_alike(tiny_folders, tmp_path, capsys):
    from diffusers import WanTransformer3DModel

    from das_core.model.wan_move.convert import load_original_transformer

    dit, _ = tiny_folders
    assert main(["convert", str(dit), "-o", str(tmp_path / "diffusers"), "--dtype", "float32"]) == 0
    assert "wrote a diffusers Wan-Move DiT" in capsys.readouterr().out
    converted = WanTransformer3DModel.from_pretrained(tmp_path / "diffusers")
    original = load_original_transformer(dit, torch.float32)
    for (name, ours), (_, theirs) in zip(converted.state_dict().items(), original.state_dict().items()):
        assert torch.equal(ours, theirs), name
    assert main(["convert", str(tmp_path / "diffusers"), "-o", str(tmp_path / "again")]) == 1
    assert "not a Wan-Move DiT in the original layout" in capsys.readouterr().err
