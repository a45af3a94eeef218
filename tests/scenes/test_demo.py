"""`das demo`: the committed example through a real local server and client, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking.contact_sheet import comparison_sheet, contact_sheet
from das_core.tracking.video import read_video

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def check_demo_outputs(out: Path, output: str) -> tuple[np.ndarray, np.ndarray]:
    tracking = read_video(out / "tracking.mp4")
    result = read_video(out / "result.mp4")
    comparison = read_video(out / "comparison.png")[0]
    # The example's 49 frames at 24 fps: 17 model frames at DaS's 8 fps, and the whole shot back.
    assert tracking.shape == (17, 480, 720, 3)
    assert len(result) == 49
    assert comparison.shape == comparison_sheet(tracking[0], tracking, result).shape
    for name in ("tracking.mp4", "result.mp4", "comparison.png"):
        assert str((out / name).resolve()) in output
    return tracking, result


def test_demo_with_preview_backend(tmp_path, capsys):
    out = tmp_path / "demo"
    started = time.monotonic()
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    seconds = time.monotonic() - started
    _tracking, result = check_demo_outputs(out, capsys.readouterr().out)
    assert seconds < 60
    # The preview warps the reference along the tracking video: frame 0 looks like the reference render.
    reference = read_video(EXAMPLES / "walk_cycle" / "reference.png")[0]
    assert result.shape == (49, 480, 720, 3)
    assert np.abs(result[0].astype(int) - reference).mean() < 6
    assert np.abs(result[-1].astype(int) - result[0]).mean() > 1  # and it moves


@pytest.mark.slow
def test_demo_with_tiny_backend_runs_the_diffusion_code(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--backend", "tiny", "--no-progress"]) == 0
    output = capsys.readouterr().out
    check_demo_outputs(out, output)
    assert "noise, not a picture" in output


def test_demo_with_tiny_backend_says_up_front_that_its_result_is_noise(tmp_path, capsys):
    # The note comes before any work, so a missing example still shows it without needing torch.
    assert main(["demo", "--out", str(tmp_path), "--backend", "tiny", "--example", str(tmp_path / "nothing")]) == 1
    output = capsys.readouterr().out
    assert "random" in output and "noise, not a picture" in output and "--backend preview" in output


@pytest.mark.slow
def test_demo_with_tiny_wan_move_sends_point_tracks(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--backend", "tiny", "--model", "wan-move", "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "making the point tracks of walk_cycle" in output
    overlay, result = read_video(out / "tracking.mp4"), read_video(out / "result.mp4")
    # 49 frames at 24 fps: 33 model frames at Wan-Move's 16 fps (held to its 81 in the model), 49 back.
    assert overlay.shape == (33, 480, 832, 3) and result.shape == (49, 480, 832, 3)


def test_demo_with_a_missing_example_says_what_to_do(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--example", str(tmp_path / "nothing")]) == 1
    error = capsys.readouterr().err
    assert "tracks.npz is missing" in error and "--example DIR" in error


def test_sheets_keep_aspect_and_map_times():
    video = np.zeros((49, 48, 72, 3), dtype=np.uint8)
    video[:, :, :36] = 200
    sheet = contact_sheet(video, count=8, columns=4, thumb_width=120)
    assert sheet.shape == (6 + 2 * (20 + 80 + 6), 6 + 4 * (120 + 6), 3)
    comparison = comparison_sheet(video[0], video, video[:9], count=4, thumb_width=120)
    assert comparison.shape == (6 + 2 * (20 + 80 + 6), 6 + 5 * (120 + 6), 3)
    # Left half bright, right half dark in every thumbnail: no stretching, no swapped axes.
    thumb = sheet[6 + 20 : 6 + 100, 6:126]
    assert thumb[:, :55].mean() > 150 and thumb[:, 65:].mean() < 50
