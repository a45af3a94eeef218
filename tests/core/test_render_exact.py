"""Mesh mode's default, exact encoding: every pixel's colour names its own surface point's
first-frame position (R = x / W, G = y / H at the first frame, B its normalised inverse distance),
black only where that point was outside the frame or behind the camera then. Expected values are
ray-cast here from the spec's formulas, on a large ground plane seen at a grazing angle: the case
where interpolating per-vertex colours (the reference encoding) goes wrong by hundreds of levels."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks

W, H, FOCAL = 160, 120, 100.0
GROUND_Y = 0.5  # the ground plane, 0.5 below the camera (OpenCV: y points down)
# Its corners: 200 wide, from 10 behind the camera to 60 ahead. At the first frame the near
# corners are behind the camera and the far ones far off both sides of the image.
GROUND = np.array([[-100, GROUND_Y, -10], [100, GROUND_Y, -10], [100, GROUND_Y, 60], [-100, GROUND_Y, 60]], dtype=float)
GROUND_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def camera(yaw: float, position) -> np.ndarray:
    """world_to_camera [4, 4] of a camera at `position` turned by `yaw` about the vertical axis."""
    rotation = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ np.asarray(position, dtype=float)
    return matrix


def tracks_of(points: np.ndarray, faces: np.ndarray, world_to_camera: np.ndarray) -> Tracks:
    """Tracks of world `points` [T, N, 3] seen by cameras `world_to_camera` [T, 4, 4]."""
    intrinsics = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]])
    return Tracks(points=points, world_to_camera=world_to_camera, intrinsics=np.tile(intrinsics, (len(points), 1, 1)),
                  width=W, height=H, faces=faces)  # fmt: skip


def ground_seen(world_to_camera: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast the ground through every pixel centre of the camera `world_to_camera`:
    (expected colour [H, W, 3] by the spec from the camera `first` at the first frame, covered
    [H, W], unsure [H, W]: pixels within a hundredth of a pixel of the ground's edge, or whose
    ground point lay within a hundredth of a pixel of the first frame's border, either way)."""
    rows, columns = np.mgrid[0:H, 0:W] + 0.5
    rotation, centre = world_to_camera[:3, :3], -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]
    rays = np.stack([(columns - W / 2) / FOCAL, (rows - H / 2) / FOCAL, np.ones((H, W))], axis=-1) @ rotation
    with np.errstate(divide="ignore"):
        along = np.where(rays[..., 1] > 0, (GROUND_Y - centre[1]) / rays[..., 1], np.inf)
    hit = centre + rays * np.where(np.isfinite(along), along, 0)[..., None]
    inside = np.minimum(100 - np.abs(hit[..., 0]), np.minimum(hit[..., 2] + 10, 60 - hit[..., 2]))
    pixel = FOCAL / np.where(np.isfinite(along), along, np.inf)  # pixels per unit at the hit
    covered = np.isfinite(along) & (inside >= 0)
    unsure = np.isfinite(along) & (np.abs(inside) * pixel < 0.01)

    first_camera = hit @ first[:3, :3].T + first[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = first_camera[..., 0] / first_camera[..., 2] * FOCAL + W / 2
        y0 = first_camera[..., 1] / first_camera[..., 2] * FOCAL + H / 2
    border = np.minimum(np.minimum(x0, W - x0), np.minimum(y0, H - y0))
    seen = (first_camera[..., 2] > 0) & (border >= 0)
    unsure |= covered & (first_camera[..., 2] > 0) & (np.abs(border) < 0.01)

    corner_distance = np.linalg.norm(GROUND @ first[:3, :3].T + first[:3, 3], axis=1)
    lo, hi = np.percentile(1 / corner_distance, [2, 98])
    with np.errstate(divide="ignore"):  # the camera centre, where a ray misses the ground
        blue = (1 / np.linalg.norm(first_camera, axis=-1) - lo) / (hi - lo)
    rgb = np.stack([x0 / W, y0 / H, blue], axis=-1)
    expected = np.where((covered & seen)[..., None], np.floor(np.clip(rgb, 0, 1) * 255), 0)
    return expected, covered, unsure


def test_every_ground_pixel_names_its_own_position_at_the_first_frame():
    # A static camera and ground: at every frame each pixel reads (x + 0.5) / W, (y + 0.5) / H.
    still = camera(0.0, [0, 0, 0])
    tracks = tracks_of(np.tile(GROUND, (2, 1, 1)), GROUND_FACES, np.tile(still, (2, 1, 1)))
    video = render_tracking(tracks, num_frames=2).astype(int)

    expected, covered, unsure = ground_seen(still, still)
    rows, columns = np.mgrid[0:H, 0:W]
    assert covered[~unsure].sum() > 0.45 * W * H and not covered[: H // 2].any()
    np.testing.assert_array_equal(
        expected[covered & ~unsure, 0], np.floor((columns + 0.5) / W * 255)[covered & ~unsure]
    )
    np.testing.assert_array_equal(expected[covered & ~unsure, 1], np.floor((rows + 0.5) / H * 255)[covered & ~unsure])
    for frame in video:
        assert np.abs(frame - expected)[covered & ~unsure].max() <= 1
        assert frame[~covered & ~unsure].max() == 0


def test_a_moving_camera_shows_each_ground_point_in_its_first_frame_colour():
    # The camera drives forward and turns left: ground that came into view after the first frame
    # is black, the rest keeps the colour of where it was in the first frame.
    cameras = np.array([camera(-0.12 * t, [0.3 * t, -0.05 * t, 1.5 * t]) for t in range(4)])
    video = render_tracking(tracks_of(np.tile(GROUND, (4, 1, 1)), GROUND_FACES, cameras), num_frames=4).astype(int)

    for t, frame in enumerate(video):
        expected, covered, unsure = ground_seen(cameras[t], cameras[0])
        assert np.abs(frame - expected)[covered & ~unsure].max() <= 1, f"frame {t}"
        assert frame[~covered & ~unsure].max() == 0, f"frame {t}"
        if t:
            assert (expected.max(axis=-1) == 0)[covered].sum() > 50 * t  # new ground really is black
            assert (expected.max(axis=-1) > 0)[covered].sum() > 0.3 * W * H


def uv_sphere(segments: int, rings: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit UV sphere: (vertices [N, 3], triangles [F, 3])."""
    theta, phi = np.meshgrid(
        np.linspace(0, np.pi, rings + 1)[1:-1], np.linspace(0, 2 * np.pi, segments, endpoint=False), indexing="ij"
    )
    body = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    vertices = np.r_[[[0, 0, 1]], body, [[0, 0, -1]]]
    ring = lambda r, k: 1 + r * segments + (np.arange(segments) + k) % segments  # noqa: E731
    faces = np.concatenate(
        [np.stack([np.zeros(segments, int), ring(0, 1), ring(0, 0)], 1)]
        + [np.stack([ring(r, 0), ring(r, 1), ring(r + 1, 1)], 1) for r in range(rings - 2)]
        + [np.stack([ring(r, 0), ring(r + 1, 1), ring(r + 1, 0)], 1) for r in range(rings - 2)]
        + [np.stack([ring(rings - 2, 0), ring(rings - 2, 1), np.full(segments, len(vertices) - 1)], 1)]
    )
    return vertices, faces


def test_a_dense_mesh_in_view_looks_the_same_in_both_encodings():
    # Triangles of a pixel or two, all in view at the first frame: per-vertex colours blended
    # across a face are then the per-pixel colours, give or take the vertices' round-down and
    # sRGB re-encoding (a level). A few silhouette pixels may differ by two: a pixel centre within
    # the edge slack of a triangle extrapolates its colour, and equally near fragments of two
    # surfaces resolve to the brighter one.
    vertices, faces = uv_sphere(96, 48)
    frames = []
    for t in range(5):
        angle = 0.5 * t
        spin = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        frames.append(vertices @ spin.T * 1.2 + [0.3 * t - 0.6, 0.1 * t, 4 + 0.2 * t])
    tracks = tracks_of(np.array(frames), faces, np.tile(np.eye(4), (5, 1, 1)))
    exact = render_tracking(tracks, num_frames=5).astype(int)
    reference = render_tracking(tracks, num_frames=5, encoding="reference").astype(int)

    covered = exact.max(axis=-1) > 0
    assert covered.mean() > 0.1
    np.testing.assert_array_equal(reference.max(axis=-1) > 0, covered)
    difference = np.abs(exact - reference).max(axis=-1)
    assert difference.max() <= 2 and (difference <= 1).mean() > 0.9999, np.unique(difference, return_counts=True)
    assert difference[covered].mean() < 0.6


@pytest.mark.parametrize("style", ["spatialtracker", "cotracker"])
def test_points_mode_is_the_same_in_both_encodings(style):
    vertices = uv_sphere(12, 6)[0] + [0, 0, 4]
    tracks = tracks_of(np.stack([vertices, vertices + 0.1]), None, np.tile(np.eye(4), (2, 1, 1)))
    exact = render_tracking(tracks, "points", 2, point_style=style)
    np.testing.assert_array_equal(render_tracking(tracks, "points", 2, point_style=style, encoding="reference"), exact)
    assert exact.max() > 0
