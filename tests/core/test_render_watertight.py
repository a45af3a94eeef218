"""Mesh mode is watertight: a pixel centre inside a closed surface is never left black.

A quad seen first from afar (so every corner gets a colour) and then close up, tilted through the
camera plane: clipped at the near plane, its triangles reach millions of pixels past the image,
and every pixel must show it. Before the fix the triangles' float32 barycentrics lost more than the
edge slack at that size and left pinholes along the shared diagonal (1,349 over the benchmark's 49
close-up frames). A jittered fine grid covering the frame checks the ordinary path's shared edges.
"""

from __future__ import annotations

import numpy as np
import pytest

from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks

W, H = 720, 480
FOCAL = W / 2 / np.tan(np.radians(25))


def tracks_of(points: np.ndarray, faces: np.ndarray) -> Tracks:
    """Camera at the origin looking down +z (world = camera), 720 x 480, points [T, N, 3]."""
    frames = len(points)
    intrinsics = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1.0]])
    return Tracks(points=points, world_to_camera=np.tile(np.eye(4), (frames, 1, 1)),
                  intrinsics=np.tile(intrinsics, (frames, 1, 1)), width=W, height=H, faces=faces)  # fmt: skip


def grid(cuts: int, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plane z = 0 from -1 to 1 in cuts x cuts quads, inner vertices jittered by `jitter` of a
    cell, each quad split along a random diagonal: (vertices [N, 3], triangles [F, 3])."""
    rng = np.random.default_rng(seed)
    s = np.linspace(-1, 1, cuts + 1)
    x, y = np.meshgrid(s, s, indexing="xy")
    inner = (np.abs(x) < 1) & (np.abs(y) < 1)
    x = x + inner * rng.uniform(-jitter, jitter, x.shape) * 2 / cuts
    y = y + inner * rng.uniform(-jitter, jitter, y.shape) * 2 / cuts
    vertices = np.stack([x, y, np.zeros_like(x)], axis=-1).reshape(-1, 3)
    i = (np.arange(cuts)[:, None] * (cuts + 1) + np.arange(cuts)).ravel()
    a, b, c, d = i, i + 1, i + cuts + 2, i + cuts + 1
    flip = rng.random(len(i)) < 0.5
    faces = np.concatenate([
        np.stack([a, b, np.where(flip, d, c)], 1),
        np.stack([np.where(flip, b, a), c, d], 1),
    ])  # fmt: skip
    return vertices, faces.astype(np.int32)


def seen_from_afar_then_close(vertices: np.ndarray, poses: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Points [1 + len(poses), N, 3]: the plane 10 units away filling a third of the frame (its
    colours), then at each (tilt, x, y, z): scaled 10x, tilted about x and moved there."""
    frames = [vertices * 2 + [0, 0, 10]]
    for tilt, *offset in poses:
        rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
        frames.append((vertices * 10) @ rotation.T + offset)
    return np.stack(frames)


# Close-up poses: the plane reaches behind the camera (clipped) and covers the whole frame.
POSES = [(0.5, 0.2 * t, 0.1 * t, 1.5 + 0.3 * t) for t in np.linspace(0, 1, 6)] + [(-0.7, -0.3, 0.2, 2.0)]


@pytest.mark.parametrize("cuts, jitter", [(1, 0.0), (3, 0.3)])
def test_a_clipped_close_up_plane_leaves_no_pixel_black(cuts, jitter):
    vertices, faces = grid(cuts, jitter, seed=cuts)
    frames = render_tracking(tracks_of(seen_from_afar_then_close(vertices, POSES), faces), num_frames=1 + len(POSES))
    assert frames[0].max(axis=-1).any()  # the first frame shows the plane, so its corners have colours
    black = np.argwhere(frames[1:].max(axis=-1) == 0)
    assert len(black) == 0, f"{len(black)} black pixels inside the plane, first (frame - 1, row, column): {black[:5]}"


def test_a_jittered_fine_grid_covering_the_frame_leaves_no_pixel_black():
    # 20,000 triangles of ~12 x 12 pixels whose corners sit at random sub-pixel positions, all
    # within the guard band (the float32 barycentric path).
    vertices, faces = grid(100, 0.35, seed=7)
    poses = [(0.0, 0.0, 0.0, 12.0), (0.3, 0.1, -0.05, 11.0), (-0.2, -0.1, 0.1, 10.5)]
    points = seen_from_afar_then_close(vertices, poses)
    frames = render_tracking(tracks_of(points, faces), num_frames=len(points))
    black = np.argwhere(frames[1:].max(axis=-1) == 0)
    assert len(black) == 0, f"{len(black)} black pixels inside the grid, first (frame - 1, row, column): {black[:5]}"


def test_triangles_past_the_guard_band_are_shaded_like_the_others(monkeypatch):
    # A jittered plane close enough that its outer triangles reach ~1,500 pixels past the image:
    # those take the float64-set-up edge test and shading. Drawn again with the guard band
    # moved out of reach (every triangle on the float32 path, still accurate at this size), the
    # frames must agree to a level.
    from das_core.tracking.render import triangles

    vertices, faces = grid(4, 0.3, seed=3)
    points = seen_from_afar_then_close(vertices, [(0.2, 0.1, 0.0, 3.5), (-0.1, -0.2, 0.1, 3.0)])
    tracks = tracks_of(points, faces)
    x = points[1:, :, 0] / points[1:, :, 2] * FOCAL + W / 2
    assert x.min() < -triangles._GUARD_BAND and x.max() > W + triangles._GUARD_BAND
    far = render_tracking(tracks, num_frames=len(points))
    monkeypatch.setattr(triangles, "_GUARD_BAND", 10**6)
    near = render_tracking(tracks, num_frames=len(points))
    assert (far[1:].max(axis=-1) > 0).all()  # the plane fills both close-up frames
    assert np.abs(far.astype(int) - near).max() <= 1
