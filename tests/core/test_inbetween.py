"""In-between frames from exact motion (`das_core.tracking.inbetween`): hand-built scenes whose
true frames are ray-cast here, compared with frames made from a few of them."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking import inbetween
from das_core.tracking.inbetween import Inbetweener, InbetweenError
from das_core.tracking.render.canvas import Canvas
from das_core.tracking.render.fragments import nearest_surfaces
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video, video_info, write_mp4, write_png_dir

W, H, FOCAL = 96, 64, 80.0
K = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]])


def camera(yaw: float, position) -> np.ndarray:
    """world_to_camera [4, 4] of a camera at `position` turned by `yaw` about the vertical axis."""
    rotation = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ np.asarray(position, dtype=float)
    return matrix


def grid(x0: float, x1: float, y0: float, y1: float, z: float, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """A square grid of cells x cells quads at depth z (world), as points [V, 3] and faces [F, 3]."""
    xs, ys = np.meshgrid(np.linspace(x0, x1, cells + 1), np.linspace(y0, y1, cells + 1))
    points = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, z)], axis=1)
    i = (np.arange(cells)[:, None] * (cells + 1) + np.arange(cells)).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + cells + 2], 1), np.stack([i, i + cells + 2, i + cells + 1], 1)])
    return points, faces


def texture(x: np.ndarray, y: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """A smooth colour pattern [..., 3] over plane coordinates."""
    return np.stack(
        [128 + 90 * np.sin(2.1 * x + phase), 128 + 90 * np.cos(1.7 * y), 128 + 60 * np.sin(1.3 * (x + y))], axis=-1
    )


def rays(world_to_camera: np.ndarray, intrinsics: np.ndarray = K, size=(W, H)) -> tuple[np.ndarray, np.ndarray]:
    """World camera centre [3] and world ray directions [H, W, 3] through every pixel centre of
    an image of `size` (width, height) seen through `intrinsics` (no skew)."""
    rotation = world_to_camera[:3, :3]
    centre = -rotation.T @ world_to_camera[:3, 3]
    u, v = np.meshgrid(np.arange(size[0]) + 0.5, np.arange(size[1]) + 0.5)
    (fx, _, cx), (_, fy, cy) = intrinsics[:2]
    directions = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    return centre, directions @ rotation  # R^T d, row-wise


def plane_hit(
    world_to_camera: np.ndarray, z: float, intrinsics: np.ndarray = K, size=(W, H)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the plane at world depth z: x, y and the ray parameter."""
    centre, directions = rays(world_to_camera, intrinsics, size)
    along = (z - centre[2]) / directions[..., 2]
    hit = centre + along[..., None] * directions
    return hit[..., 0], hit[..., 1], along


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / max(error, 1e-12)))


def to_uint8(colours: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(colours), 0, 255).astype(np.uint8)


def tracks_of(points: np.ndarray, faces: np.ndarray, cameras: list[np.ndarray]) -> Tracks:
    return Tracks(points=points, world_to_camera=np.stack(cameras), intrinsics=np.tile(K, (len(cameras), 1, 1)),
                  width=W, height=H, faces=faces)  # fmt: skip


def test_textured_plane_under_a_moving_camera_matches_the_true_frames() -> None:
    cameras = [camera(0.03 * f, (0.15 * f, 0.05 * f, -0.2 * f)) for f in range(7)]
    points, faces = grid(-30, 30, -30, 30, 6.0, 6)
    tracks = tracks_of(np.tile(points, (7, 1, 1)), faces, cameras)
    true = [to_uint8(texture(*plane_hit(c, 6.0)[:2])) for c in cameras]
    inbetween = Inbetweener(tracks, {0: true[0], 3: true[3], 6: true[6]})
    for t in (1, 2, 4, 5):
        assert psnr(inbetween.frame(t), true[t]) >= 35, t
    assert np.array_equal(inbetween.frame(3), true[3])


def test_a_nearer_object_crossing_leaves_no_ghost() -> None:
    """A small square slides across in front of a textured wall: where it stood in one source
    frame, the wall comes from the other; the in-between matches the truth everywhere."""
    wall, wall_faces = grid(-20, 20, -20, 20, 10.0, 4)
    square, square_faces = grid(-0.5, 0.5, -0.5, 0.5, 4.0, 2)
    shift = np.array([-1.2, 0.0, 1.2])  # the square's x at frames 0, 1, 2
    points = np.stack([np.concatenate([wall, square + [x, 0, 0]]) for x in shift])
    faces = np.concatenate([wall_faces, square_faces + len(wall)])
    tracks = tracks_of(points, faces, [camera(0, (0, 0, 0))] * 3)

    def truth(x: float) -> np.ndarray:
        wall_x, wall_y, _ = plane_hit(camera(0, (0, 0, 0)), 10.0)
        sq_x, sq_y, _ = plane_hit(camera(0, (0, 0, 0)), 4.0)
        colours = texture(wall_x, wall_y)
        on_square = (np.abs(sq_x - x) < 0.5) & (np.abs(sq_y) < 0.5)
        colours[on_square] = texture(sq_x - x, sq_y, phase=2.0)[on_square]
        return to_uint8(colours)

    made = Inbetweener(tracks, {0: truth(shift[0]), 2: truth(shift[2])}).frame(1)
    expected = truth(shift[1])
    cross_fade = ((truth(shift[0]).astype(float) + truth(shift[2])) / 2).round()
    # Where the square stood at frame 0 or 2 and the wall shows at frame 1: a cross-fade ghosts there.
    wall_x, wall_y, _ = plane_hit(camera(0, (0, 0, 0)), 4.0)
    ghost = (np.abs(wall_y) < 0.45) & ((np.abs(wall_x + 1.2) < 0.45) | (np.abs(wall_x - 1.2) < 0.45))
    assert np.abs(cross_fade[ghost] - expected[ghost]).max() > 60  # the scene does test ghosts
    assert np.abs(made[ghost].astype(int) - expected[ghost]).max() <= 8
    assert psnr(made, expected) >= 30  # the square's outline is aliased in the true frames


def test_empty_background_moves_with_the_camera() -> None:
    """Nothing is drawn behind most pixels (one small square far off to the side); the sky is a
    pattern over ray directions, so the in-between of a panning camera is the homography's."""
    square, faces = grid(40, 41, 0, 1, 5.0, 1)
    cameras = [camera(0.05 * f, (0.3 * f, 0, 0)) for f in range(5)]
    tracks = tracks_of(np.tile(square, (5, 1, 1)), faces, cameras)

    def sky(world_to_camera: np.ndarray) -> np.ndarray:
        _, directions = rays(world_to_camera)
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        return to_uint8(texture(6 * np.arctan2(directions[..., 0], directions[..., 2]), 6 * directions[..., 1]))

    made = Inbetweener(tracks, {0: sky(cameras[0]), 4: sky(cameras[4])})
    for t in (1, 2, 3):
        # Columns that the panning camera saw in both source frames.
        assert psnr(made.frame(t)[:, 20:-20], sky(cameras[t])[:, 20:-20]) >= 35, t


def test_letterboxed_frames_keep_the_bars_and_match_in_the_content() -> None:
    """Generated frames twice the tracks' size with bars above and below (the model's canvas):
    the content is made at its scaled geometry, the bars come from the nearer frame."""
    cameras = [camera(0.03 * f, (0.15 * f, 0.05 * f, -0.2 * f)) for f in range(4)]
    points, faces = grid(-30, 30, -30, 30, 6.0, 6)
    tracks = tracks_of(np.tile(points, (4, 1, 1)), faces, cameras)
    canvas = Canvas.fitting(tracks, (2 * W, 2 * H + 20))
    assert (canvas.left, canvas.top, canvas.content_width, canvas.content_height) == (0, 10, 2 * W, 2 * H)
    size = (canvas.content_width, canvas.content_height)

    def true(f: int) -> np.ndarray:
        frame = np.full((canvas.height, canvas.width, 3), 40 * f, dtype=np.uint8)
        frame[10:-10] = to_uint8(texture(*plane_hit(cameras[f], 6.0, canvas.intrinsics[f], size)[:2]))
        return frame

    made = Inbetweener(tracks, {0: true(0), 3: true(3)})
    for t, nearer in ((1, 0), (2, 3)):
        frame = made.frame(t)
        assert psnr(frame[10:-10], true(t)[10:-10]) >= 35, t
        assert np.array_equal(frame[:10], true(nearer)[:10]) and np.array_equal(frame[-10:], true(nearer)[-10:])


def test_still_surfaces_and_bands_on_threads_change_nothing(monkeypatch) -> None:
    """Pixels whose surface stands still read each source at the pixel itself, and the frame is
    made in bands of rows on threads: both give what tracing every pixel on one thread does."""
    wall, wall_faces = grid(-20, 20, -20, 20, 10.0, 4)
    square, square_faces = grid(-0.5, 0.5, -0.5, 0.5, 4.0, 2)
    points = np.stack([np.concatenate([wall, square + [x, 0, 0]]) for x in (-1.2, 0.0, 1.2)])
    tracks = tracks_of(points, np.concatenate([wall_faces, square_faces + len(wall)]), [camera(0, (0, 0, 0))] * 3)
    rng = np.random.default_rng(0)
    generated = {k: rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for k in (0, 2)}
    made = Inbetweener(tracks, generated).frame(1)

    monkeypatch.setattr(inbetween, "_THREADS", 1)
    assert np.array_equal(Inbetweener(tracks, generated).frame(1), made)
    traced = Inbetweener(tracks, generated)
    paths = traced._paths
    monkeypatch.setattr(traced, "_paths", lambda *a: np.full_like(paths(*a), inbetween._MOVING))
    # The wall's triangles and the background
    assert (paths(1, [0, 2], traced._surfaces(1, [0, 2])) == inbetween._STILL).sum() > 1
    assert np.abs(traced.frame(1).astype(int) - made).max() <= 1


def test_surfaces_fixed_in_the_world_under_a_moving_camera_change_nothing(monkeypatch) -> None:
    """Under a moving camera, pixels on surfaces that stay put in the world (and the background)
    take each source's position from the camera's motion and their 1/z: what tracing them
    through their triangles' planes gives, within a level, however the rows are cut into
    blocks. A square sliding in front keeps the traced path for its own pixels."""
    wall, wall_faces = grid(-3, 3, -3, 3, 10.0, 4)
    square, square_faces = grid(-0.5, 0.5, -0.5, 0.5, 4.0, 2)
    points = np.stack([np.concatenate([wall, square + [x, 0, 0]]) for x in (-0.6, 0.0, 0.6)])
    cameras = [camera(0.04 * f, (0.2 * f, 0.05 * f, -0.3 * f)) for f in range(3)]
    tracks = tracks_of(points, np.concatenate([wall_faces, square_faces + len(wall)]), cameras)
    rng = np.random.default_rng(1)
    generated = {k: rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for k in (0, 2)}
    fixed = Inbetweener(tracks, generated)
    paths = fixed._paths(1, [0, 2], fixed._surfaces(1, [0, 2]))
    assert (paths == inbetween._FIXED).sum() > 2 and (paths == inbetween._MOVING).sum() > 1
    assert not (paths == inbetween._STILL).any()
    made = fixed.frame(1)
    monkeypatch.setattr(inbetween, "_BLOCK_PIXELS", 5 * W)  # bands of 32 rows: blocks of 5 and a rest of 2
    assert np.array_equal(fixed.frame(1), made)
    monkeypatch.setattr(inbetween, "_BLOCK_PIXELS", 64 * W)

    traced = Inbetweener(tracks, generated)
    monkeypatch.setattr(traced, "_paths", lambda *a: np.full_like(paths, inbetween._MOVING))
    difference = np.abs(traced.frame(1).astype(int) - made)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_nearest_surfaces_planes_give_the_attributes_at_pixel_centres() -> None:
    """A plane turned away from the camera with each vertex's world position as its attributes:
    the planes' ratios at every drawn pixel are where that pixel's ray meets it."""
    points, faces = grid(-3, 3, -3, 3, 0.0, 3)
    tilt = np.array([[1, 0, 0], [0, np.cos(0.6), -np.sin(0.6)], [0, np.sin(0.6), np.cos(0.6)]])
    points = points @ tilt.T + [0.2, 0.1, 6.0]
    surfaces = nearest_surfaces(points, np.eye(4), K, faces, W, H, points)
    drawn = np.flatnonzero(surfaces.owner)
    assert 0.5 * W * H < len(drawn) < W * H and np.array_equal(drawn, np.flatnonzero(surfaces.inverse_z))
    row, column = np.divmod(drawn, W)
    at = surfaces.planes[surfaces.owner[drawn]] @ [1.0, 0.0, 0.0]  # value at pixel (0, 0)
    at += surfaces.planes[surfaces.owner[drawn]] @ [0.0, 1.0, 0.0] * column[:, None]
    at += surfaces.planes[surfaces.owner[drawn]] @ [0.0, 0.0, 1.0] * row[:, None]
    centre, directions = rays(np.eye(4))
    normal = tilt[:, 2]
    along = ((points[0] - centre) @ normal) / (directions.reshape(-1, 3)[drawn] @ normal)
    expected = centre + along[:, None] * directions.reshape(-1, 3)[drawn]
    np.testing.assert_allclose(at[:, 1:] / at[:, :1], expected, atol=1e-4)
    np.testing.assert_allclose(at[:, 0], 1 / along, rtol=1e-4)  # plane 0 is 1/z (z: along the axis here)
    np.testing.assert_allclose(surfaces.inverse_z[drawn], 1 / along, rtol=1e-4)


def test_bad_input_is_named() -> None:
    points, faces = grid(-1, 1, -1, 1, 5.0, 1)
    tracks = tracks_of(np.tile(points, (3, 1, 1)), faces, [camera(0, (0, 0, 0))] * 3)
    frame = np.zeros((H, W, 3), dtype=np.uint8)
    with pytest.raises(InbetweenError, match="no generated frames"):
        Inbetweener(tracks, {})
    with pytest.raises(InbetweenError, match="key 3 is not a timeline index"):
        Inbetweener(tracks, {3: frame})
    with pytest.raises(InbetweenError, match="must be uint8"):
        Inbetweener(tracks, {0: frame.astype(float)})
    with pytest.raises(InbetweenError, match="one size"):
        Inbetweener(tracks, {0: frame, 2: frame[:10]})
    with pytest.raises(InbetweenError, match="not a timeline frame"):
        Inbetweener(tracks, {0: frame}).frame(5)
    no_faces = Tracks(points=tracks.points, world_to_camera=tracks.world_to_camera, intrinsics=tracks.intrinsics,
                      width=W, height=H)  # fmt: skip
    with pytest.raises(InbetweenError, match="no faces"):
        Inbetweener(no_faces, {0: frame})


def test_interpolate_command_makes_every_timeline_frame(tmp_path, capsys) -> None:
    cameras = [camera(0.03 * f, (0.15 * f, 0.05 * f, -0.2 * f)) for f in range(7)]
    points, faces = grid(-30, 30, -30, 30, 6.0, 6)
    tracks = tracks_of(np.tile(points, (7, 1, 1)), faces, cameras)
    tracks.fps = 12.0
    tracks.save(tmp_path / "tracks.npz")
    true = np.stack([to_uint8(texture(*plane_hit(c, 6.0)[:2])) for c in cameras])
    write_png_dir(tmp_path / "model", true[[0, 3, 6]])  # lossless: the model frames, at 4 fps in the 12 fps shot

    code = main(["interpolate", str(tmp_path / "model"), str(tmp_path / "tracks.npz"), "-o", str(tmp_path / "out.mp4"), "--model-fps", "4", "--quiet"])  # fmt: skip

    assert code == 0
    assert "7 frames 96x64 at 12 fps from 3 model frames at 4 fps (4 made)" in capsys.readouterr().out
    made = read_video(tmp_path / "out.mp4")
    assert video_info(tmp_path / "out.mp4").fps == 12
    assert len(made) == 7 and psnr(made[2], true[2]) >= 30  # H.264 costs a few dB

    write_mp4(tmp_path / "model.mp4", true[[0, 3, 6]], fps=4)  # an MP4 says its frame rate itself
    assert main(["interpolate", str(tmp_path / "model.mp4"), str(tmp_path / "tracks.npz"), "-o", str(tmp_path / "again.mp4"), "--quiet"]) == 0  # fmt: skip
    assert len(read_video(tmp_path / "again.mp4")) == 7


def test_interpolate_command_needs_the_model_frames_of_the_tracks(tmp_path, capsys) -> None:
    points, faces = grid(-1, 1, -1, 1, 5.0, 1)
    tracks_of(np.tile(points, (3, 1, 1)), faces, [camera(0, (0, 0, 0))] * 3).save(tmp_path / "tracks.npz")
    write_png_dir(tmp_path / "model", np.zeros((4, H, W, 3), dtype=np.uint8))
    arguments = [str(tmp_path / "model"), str(tmp_path / "tracks.npz"), "-o", str(tmp_path / "o.mp4"), "--quiet"]
    assert main(["interpolate", *arguments]) == 1
    assert (
        "is a folder of frames, which has no frame rate: give the model's with --model-fps" in capsys.readouterr().err
    )
    assert main(["interpolate", *arguments, "--model-fps", "8"]) == 1
    assert "4 frames came back for a shot of 1 model frame" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
