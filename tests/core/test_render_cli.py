"""`das render-tracking` end to end: a real tracks file in, real MP4 and PNG files out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video

W, H = 160, 120


def moving_grid(frames: int = 12, faces: bool = True) -> Tracks:
    """A 6 x 5 vertex grid at depth ~4 sliding right 2 px per frame before a fixed camera."""
    gu, gv = np.meshgrid(np.linspace(30, 110, 6), np.linspace(30, 90, 5))
    uv = np.stack([gu.ravel(), gv.ravel()], axis=1)
    depth = 4 + 0.01 * uv[:, 0]
    points = []
    for t in range(frames):
        moved = uv + [2 * t, 0]
        points.append(np.stack([(moved[:, 0] - W / 2) * depth / 100, (moved[:, 1] - H / 2) * depth / 100, depth], 1))
    i = (np.arange(4)[:, None] * 6 + np.arange(5)).ravel()
    triangles = np.concatenate([np.stack([i, i + 1, i + 7], 1), np.stack([i, i + 7, i + 6], 1)])
    return Tracks(
        points=np.array(points),
        world_to_camera=np.tile(np.eye(4), (frames, 1, 1)),
        intrinsics=np.tile([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]], (frames, 1, 1)),
        width=W,
        height=H,
        faces=triangles if faces else None,
        fps=24,
    )


def test_render_tracking_writes_mp4_and_lossless_pngs(tmp_path, capsys):
    tracks = moving_grid()
    tracks.save(tmp_path / "grid.npz")
    out, pngs = tmp_path / "out" / "tracking.mp4", tmp_path / "frames"

    code = main(
        [
            "render-tracking",
            str(tmp_path / "grid.npz"),
            "-o",
            str(out),
            "--frames",
            "5",
            "--png-dir",
            str(pngs),
            "--quiet",
        ]
    )

    assert code == 0
    expected = render_tracking(tracks, mode="mesh", num_frames=5)
    np.testing.assert_array_equal(read_video(pngs), expected)  # PNGs are exact
    video = read_video(out)
    assert video.shape == (5, H, W, 3)
    assert np.abs(video.astype(int) - expected).mean() < 2  # H.264 is close, not exact
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert "5 frames 160x120" in summary[0] and "mesh mode" in summary[0] and "12 source frames" in summary[0]


def test_fit_letterboxes_to_the_model_size(tmp_path, capsys):
    moving_grid().save(tmp_path / "grid.npz")
    pngs = tmp_path / "frames"
    code = main(
        [
            "render-tracking",
            str(tmp_path / "grid.npz"),
            "-o",
            str(tmp_path / "t.mp4"),
            "--frames",
            "3",
            "--fit",
            "--png-dir",
            str(pngs),
            "--quiet",
            "--mode",
            "points",
            "--point-style",
            "cotracker",
        ]
    )
    assert code == 0
    frames = read_video(pngs)
    assert frames.shape == (3, 480, 720, 3)
    # 160 x 120 (4:3) scaled by 4 to 640 x 480, centred: 40-pixel black bars left and right.
    assert frames[:, :, :40].max() == 0 and frames[:, :, 680:].max() == 0
    assert frames[:, :, 40:680].max() > 0
    assert "letterboxed from 160x120" in capsys.readouterr().out
    # Drawn straight into the letterboxed frame (colours are positions in it), not resized after.
    drawn = render_tracking(Tracks.load(tmp_path / "grid.npz"), "points", 3, fit=(720, 480), point_style="cotracker")
    np.testing.assert_array_equal(frames, drawn)


def test_encoding_reference_renders_per_vertex_colours(tmp_path, capsys):
    # The grid's first-frame left column sits at x = 30: shifted 40 px left, it starts off screen,
    # where the reference encoding's black vertices darken faces that the exact one colours.
    tracks = moving_grid(frames=3)
    tracks.points[..., 0] -= 40 * tracks.points[..., 2] / 100
    tracks.save(tmp_path / "grid.npz")
    arguments = ["render-tracking", str(tmp_path / "grid.npz"), "-o", str(tmp_path / "t.mp4"), "--frames", "3"]
    assert main([*arguments, "--png-dir", str(tmp_path / "exact"), "--quiet"]) == 0
    assert "exact encoding" in capsys.readouterr().out
    assert main([*arguments, "--png-dir", str(tmp_path / "ref"), "--quiet", "--encoding", "reference"]) == 0
    assert "reference encoding" in capsys.readouterr().out

    reference = render_tracking(tracks, num_frames=3, encoding="reference")
    np.testing.assert_array_equal(read_video(tmp_path / "ref"), reference)
    np.testing.assert_array_equal(read_video(tmp_path / "exact"), render_tracking(tracks, num_frames=3))
    assert np.abs(read_video(tmp_path / "exact").astype(int) - reference).max() > 50


def test_mode_defaults_to_points_without_faces(tmp_path, capsys):
    moving_grid(faces=False).save(tmp_path / "points.npz")
    assert (
        main(
            ["render-tracking", str(tmp_path / "points.npz"), "-o", str(tmp_path / "p.mp4"), "--frames", "2", "--quiet"]
        )
        == 0
    )
    assert "points mode (30 points, spatialtracker style)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("faces", "arguments", "message"),
    [
        (False, ["--mode", "mesh"], "mesh mode needs faces"),
        (True, ["--frames", "0"], "num_frames must be a positive whole number"),
    ],
)
def test_bad_requests_exit_1_with_one_line(tmp_path, capsys, faces, arguments, message):
    moving_grid(faces=faces).save(tmp_path / "t.npz")
    code = main(["render-tracking", str(tmp_path / "t.npz"), "-o", str(tmp_path / "t.mp4"), "--quiet", *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(error) == 1 and message in error[0]
    assert not (tmp_path / "t.mp4").exists()


def test_broken_tracks_file_is_named(tmp_path, capsys):
    tracks = moving_grid()
    np.savez(tmp_path / "broken.npz", format="das-tracks/1", points=tracks.points, width=W, height=H)
    assert main(["render-tracking", str(tmp_path / "broken.npz"), "-o", str(tmp_path / "t.mp4")]) == 1
    assert "missing 2 keys: world_to_camera, intrinsics" in capsys.readouterr().err


def test_command_runs_as_a_program(tmp_path):
    moving_grid(frames=4).save(tmp_path / "grid.npz")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "das_core",
            "render-tracking",
            str(tmp_path / "grid.npz"),
            "-o",
            str(tmp_path / "t.mp4"),
            "--frames",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 't.mp4'}: 4 frames 160x120")
    assert "tracking video" in result.stderr  # the tqdm bar
    assert read_video(tmp_path / "t.mp4").shape == (4, H, W, 3)
