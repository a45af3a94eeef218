"""`das dataset check` on real files: one dataset broken in every way, all problems in one report."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from das_core.cli import main as das_main
from das_core.tracking.video import read_video, write_mp4
from das_core.train.check import check_dataset, tracking_look_problems

W, H, F = 96, 64, 5


@pytest.fixture
def good(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    return root


def _append(root, prompt, video, tracking, image):
    for name, line in (
        ("prompt.txt", prompt),
        ("videos.txt", video),
        ("trackings.txt", tracking),
        ("images.txt", image),
    ):
        with open(root / name, "a", encoding="utf-8") as file:
            file.write(line + "\n")


def test_good_synthesised_dataset_has_no_problems(good):
    report = check_dataset(good, image_column="images.txt", num_frames=F, width=W, height=H)
    assert report.ok, [str(p) for p in report.problems]
    assert report.num_samples == 1


def test_every_kind_of_problem_is_reported_at_once(good):
    video = read_video(good / "videos" / "00000.mp4")
    tracking = read_video(good / "tracking" / "00000_tracking.mp4")
    # sample 2: files that do not exist
    _append(good, "missing", "videos/nope.mp4", "tracking/nope.mp4", "images/00000.png")
    # sample 3: an unreadable video
    (good / "videos" / "garbage.mp4").write_bytes(b"not a video at all" * 10)
    _append(good, "garbage", "videos/garbage.mp4", "tracking/00000_tracking.mp4", "images/00000.png")
    # sample 4: wrong frame count and size
    write_mp4(good / "videos" / "short.mp4", np.repeat(video[:3, :, :, :], 1, axis=0)[:, :32, :48], fps=8)
    _append(good, "short", "videos/short.mp4", "tracking/00000_tracking.mp4", "images/00000.png")
    # sample 5: the RGB video listed as tracking video (background not black, colours not positions)
    _append(good, "swapped", "videos/00000.mp4", "videos/00000.mp4", "images/00000.png")
    # sample 6: an all-black tracking video (no coverage)
    write_mp4(good / "tracking" / "black.mp4", np.zeros_like(tracking), fps=8)
    _append(good, "black", "videos/00000.mp4", "tracking/black.mp4", "images/00000.png")
    # counts differ: one more prompt than anything else
    with open(good / "prompt.txt", "a", encoding="utf-8") as file:
        file.write("an extra prompt\n")

    report = check_dataset(good, image_column="images.txt", num_frames=F, width=W, height=H)
    found = {(problem.kind, problem.line) for problem in report.problems}
    assert ("count", None) in found
    assert ("missing", 2) in found
    assert ("unreadable", 3) in found
    assert ("frames", 4) in found and ("size", 4) in found
    assert ("background", 5) in found and ("colours", 5) in found
    assert ("coverage", 6) in found
    assert not any(problem.line == 1 for problem in report.problems)  # the good sample stays clean
    assert report.num_samples == 6


def test_missing_layout_files_are_named_together_and_counted(tmp_path, capsys):
    report = check_dataset(tmp_path)
    messages = [problem.message for problem in report.problems]
    assert len(messages) == 3
    for message, name in zip(messages, ("prompt.txt", "videos.txt", "trackings.txt")):
        assert name in message
    assert das_main(["dataset", "check", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3  # one line per problem
    assert captured.err.strip().endswith(f"{tmp_path}: 0 samples, 3 problems")


def test_tracking_look_accepts_a_rendered_tracking_video(good):
    assert tracking_look_problems(read_video(good / "tracking" / "00000_tracking.mp4")) == []


def test_cli_exits_1_and_prints_each_problem(good):
    (good / "videos" / "00000.mp4").unlink()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "das_core",
            "dataset",
            "check",
            str(good),
            "--frames",
            str(F),
            "--width",
            str(W),
            "--height",
            str(H),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "[missing] sample 1: video videos/00000.mp4 does not exist" in result.stdout
    assert result.stderr.strip().endswith(": 1 sample, 1 problem")
