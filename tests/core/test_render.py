"""The tracking-video renderer against das_core/tracking/ENCODING.md, with expected values computed here from its
formulas (not from das_core.tracking.colors), on small synthetic scenes with an OpenCV camera.
Tests of how mesh mode blends vertex colours use the reference encoding; the exact encoding's own
tests are in test_render_exact.py."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.tracking.render import RenderError, render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import sample_indices

W, H = 160, 120


def intrinsics(focal: float = 100.0) -> np.ndarray:
    return np.array([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1.0]])


def make_tracks(points, faces=None, world_to_camera=None, focal=None, visibility=None) -> Tracks:
    """Tracks of world points [T, N, 3]; camera at the origin looking down +z unless given."""
    points = np.asarray(points, dtype=np.float64)
    frames = len(points)
    if world_to_camera is None:
        world_to_camera = np.tile(np.eye(4), (frames, 1, 1))
    focal = np.full(frames, 100.0) if focal is None else np.asarray(focal, dtype=np.float64)
    return Tracks(
        points=points,
        world_to_camera=world_to_camera,
        intrinsics=np.stack([intrinsics(f) for f in focal]),
        width=W,
        height=H,
        faces=faces,
        visibility=visibility,
    )


def unproject(uv: np.ndarray, depth: np.ndarray, focal: float = 100.0) -> np.ndarray:
    """Camera-space points that project to pixel positions `uv` [N, 2] at camera depths [N]."""
    x = (uv[:, 0] - W / 2) * depth / focal
    y = (uv[:, 1] - H / 2) * depth / focal
    return np.stack([x, y, depth], axis=1)


def grid_faces(columns: int, rows: int) -> np.ndarray:
    """Two triangles per cell of a rows x columns vertex grid (row-major vertex order)."""
    i = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)).ravel()
    return np.concatenate([np.stack([i, i + 1, i + columns + 1], 1), np.stack([i, i + columns + 1, i + columns], 1)])


def spec_vertex_colors(uv: np.ndarray, distance: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Spec §1 mesh path: R = x/W, G = y/H, B = normalised 1/distance over all vertices; floor."""
    inverse = 1.0 / distance
    lo, hi = np.percentile(inverse, [2, 98])
    blue = np.clip((inverse - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(inverse)
    rgb = np.stack([uv[:, 0] / W, uv[:, 1] / H, blue], axis=1)
    return np.where(inside[:, None], np.floor(np.clip(rgb, 0, 1) * 255), 0).astype(np.uint8)


def srgb_decode(v):
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v):
    v = np.clip(np.asarray(v, dtype=np.float64), 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def colour_seen_at(corners: np.ndarray, colors: np.ndarray, px: float, py: float, focal: float = 100.0):
    """Spec colour where the ray through pixel position (px, py) meets the 3D triangle `corners`
    [3, 3] (camera space) with 8-bit vertex `colors` [3, 3]: linear-light barycentric blend,
    encoded and rounded. Returns (colour [3], barycentric weights [3])."""
    ray = np.array([(px - W / 2) / focal, (py - H / 2) / focal, 1.0])
    # Unknowns w0, w1, w2, s: w0 P0 + w1 P1 + w2 P2 - s ray = 0, w0 + w1 + w2 = 1.
    system = np.zeros((4, 4))
    system[:3, :3] = corners.T
    system[:3, 3] = -ray
    system[3, :3] = 1
    weights = np.linalg.solve(system, [0, 0, 0, 1])[:3]
    return np.round(srgb_encode(weights @ srgb_decode(colors / 255)) * 255), weights


def pixel_of(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the pixels containing positions uv."""
    return np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)


# ---------------------------------------------------------------------------------------------
# Mesh mode


def test_each_vertex_shows_its_first_frame_colour_in_every_frame():
    # A deforming grid whose vertices sit exactly on pixel centres in every frame, so the pixel
    # under each vertex must hold exactly that vertex's analytic first-frame colour.
    columns, rows, frames = 9, 7, 5
    gu, gv = np.meshgrid(np.arange(columns) * 14 + 20.5, np.arange(rows) * 12 + 25.5)
    base_uv = np.stack([gu.ravel(), gv.ravel()], axis=1)
    base_depth = 3.0 + 0.2 * np.arange(columns * rows) % 1.7 + 0.3 * (gv.ravel() / H)
    points, uvs = [], []
    for t in range(frames):
        uv = base_uv + np.array([3 * t, -2 * t])  # whole-pixel moves keep vertices on centres
        depth = base_depth * (1 + 0.1 * t) + 0.05 * t * np.sin(np.arange(columns * rows))
        points.append(unproject(uv, depth))
        uvs.append(uv)
    tracks = make_tracks(points, faces=grid_faces(columns, rows))
    video = render_tracking(tracks, mode="mesh", num_frames=frames)

    distance = np.linalg.norm(points[0], axis=1)
    expected = spec_vertex_colors(uvs[0], distance, np.ones(len(distance), bool))
    assert len(np.unique(expected[:, 2])) > 10  # blue really varies
    for t in range(frames):
        row, column = pixel_of(uvs[t])
        np.testing.assert_array_equal(video[t, row, column], expected, err_msg=f"frame {t}")


def test_vertices_out_of_frame_or_behind_camera_at_first_frame_are_black():
    # Three vertices in frame, one right of the image, one behind the camera; at frame 1 all five
    # are moved onto pixel centres inside the image, and the two must show black there.
    uv0 = np.array([[40.5, 40.5], [60.5, 80.5], [90.5, 50.5], [200.5, 60.5], [70.5, 60.5]])
    depth0 = np.array([3.0, 3.5, 4.0, 3.0, 3.0])
    first = unproject(uv0, depth0)
    first[4, 2] = -2.0  # behind the camera at the first frame
    uv1 = np.array([[40.5, 40.5], [60.5, 80.5], [90.5, 50.5], [120.5, 30.5], [130.5, 90.5]])
    second = unproject(uv1, np.full(5, 3.0))
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    video = render_tracking(make_tracks([first, second], faces=faces), num_frames=2)
    row, column = pixel_of(uv1)
    np.testing.assert_array_equal(video[1, row[3:], column[3:]], 0)
    assert video[1, row[:3], column[:3]].max(axis=1).min() > 0


def test_colours_follow_vertices_seen_by_a_moving_camera():
    # A static tilted grid; the camera slides, backs off and turns. At each interior vertex's
    # pixel, the colour is exactly what the ray through that pixel centre meets on the grid.
    columns, rows, frames = 12, 9, 6
    gx, gy = np.meshgrid(np.linspace(-1.5, 1.5, columns), np.linspace(-1.0, 1.0, rows))
    world = np.stack([gx.ravel(), gy.ravel(), 5 + 0.4 * gx.ravel()], axis=1)
    faces = grid_faces(columns, rows)
    world_to_camera = []
    for t in range(frames):
        angle = -0.04 * t
        rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        position = np.array([0.15 * t, -0.08 * t, -0.2 * t])
        matrix = np.eye(4)
        matrix[:3, :3] = rotation
        matrix[:3, 3] = -rotation @ position
        world_to_camera.append(matrix)
    tracks = make_tracks(np.tile(world, (frames, 1, 1)), faces=faces, world_to_camera=np.array(world_to_camera))
    video = render_tracking(tracks, num_frames=frames, encoding="reference")

    camera0 = world @ world_to_camera[0][:3, :3].T + world_to_camera[0][:3, 3]
    uv0 = camera0[:, :2] / camera0[:, 2:] * 100 + [W / 2, H / 2]
    colors = spec_vertex_colors(uv0, np.linalg.norm(camera0, axis=1), np.ones(len(world), bool))
    interior = np.flatnonzero(((np.abs(gx) < 1.5) & (np.abs(gy) < 1.0)).ravel())
    checked, moved = 0, 0.0
    for t in range(frames):
        camera = world @ world_to_camera[t][:3, :3].T + world_to_camera[t][:3, 3]
        uv = camera[:, :2] / camera[:, 2:] * 100 + [W / 2, H / 2]
        moved = max(moved, np.abs(uv - uv0).max())
        for vertex in interior:
            px, py = np.floor(uv[vertex]) + 0.5
            for face in faces[(faces == vertex).any(axis=1)]:
                expected, weights = colour_seen_at(camera[face], colors[face], px, py)
                if weights.min() > 1e-6:
                    assert np.abs(video[t, int(py), int(px)].astype(int) - expected).max() <= 1, (t, vertex)
                    checked += 1
    assert checked > 0.8 * frames * len(interior)
    assert moved > 20  # the camera motion really moved the image


def test_colours_follow_vertices_through_a_zoom():
    columns, rows, frames = 10, 8, 4
    gu, gv = np.meshgrid(np.linspace(50, 110, columns), np.linspace(35, 85, rows))
    uv0 = np.stack([gu.ravel(), gv.ravel()], axis=1)
    world = unproject(uv0, 4 + 0.02 * uv0[:, 0])
    focal = np.array([100.0, 120.0, 150.0, 190.0])
    tracks = make_tracks(np.tile(world, (frames, 1, 1)), faces=grid_faces(columns, rows), focal=focal)
    video = render_tracking(tracks, num_frames=frames, encoding="reference")

    expected = spec_vertex_colors(uv0, np.linalg.norm(world, axis=1), np.ones(len(world), bool))
    coverage = []
    for t in range(frames):
        uv = world[:, :2] / world[:, 2:] * focal[t] + [W / 2, H / 2]
        interior = ((gu > 50) & (gu < 110) & (gv > 35) & (gv < 85)).ravel()  # not on the outline
        inside = interior & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        row, column = pixel_of(uv[inside])
        assert np.abs(video[t, row, column].astype(int) - expected[inside]).max() <= 2, f"frame {t}"
        coverage.append((video[t].max(axis=-1) > 0).sum())
    assert coverage == sorted(coverage) and coverage[-1] > 2 * coverage[0]  # the zoom enlarges it


@pytest.mark.parametrize("far_first", [True, False])
def test_nearer_surface_hides_farther_whatever_the_face_order(far_first):
    # Frame 0: a far quad (depth 8) on the left, a near quad (depth 3) on the right, so their red
    # channels differ (red = first-frame x). Frame 1: the near quad slides over the far one.
    square = np.array([[5.5, 30.5], [65.5, 30.5], [65.5, 90.5], [5.5, 90.5]])
    far = unproject(square, np.full(4, 8.0))
    near = [unproject(square + [90, 0], np.full(4, 3.0)), unproject(square + [30, 10], np.full(4, 3.0))]
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    frames = [np.concatenate([far, n] if far_first else [n, far]) for n in near]
    video = render_tracking(make_tracks(frames, faces=np.concatenate([quad, quad + 4])), num_frames=2)

    red = video[..., 0].astype(int)
    near_red = (red[0, 31:90, 96:155].min(), red[0, 31:90, 96:155].max())
    far_red = (red[0, 31:90, 6:65].min(), red[0, 31:90, 6:65].max())
    assert far_red[1] < near_red[0]  # the two quads are told apart by red
    overlap = red[1, 45:88, 40:63]  # near quad over the far one
    assert near_red[0] <= overlap.min() and overlap.max() <= near_red[1]
    alone = red[1, 33:88, 8:32]  # far quad only
    assert far_red[0] <= alone.min() and alone.max() <= far_red[1]


def test_geometry_behind_the_camera_is_clipped_never_projected():
    # A ground triangle (y = +1 is below the camera in OpenCV axes) with one corner behind the
    # camera, plus a triangle wholly behind it. Each pixel must show the colour of the point where
    # its ray meets the triangle (linear-light barycentrics in 3D); rays that miss stay black.
    # Projecting the corner behind the camera would flip it above the horizon and smear colours.
    a, b, c = np.array([-1.0, 1, 3]), np.array([1.5, 1, 5]), np.array([0.0, 1, -3])
    behind = np.array([[-5, -5, -3], [5, -5, -3], [0, 5, -4]], dtype=float)
    points = np.concatenate([[a, b, c], behind])
    tracks = make_tracks([points], faces=np.array([[0, 1, 2], [3, 4, 5]]))
    video = render_tracking(tracks, num_frames=1, encoding="reference")[0]

    with np.errstate(divide="ignore", invalid="ignore"):
        uv = points[:, :2] / points[:, 2:] * 100 + [W / 2, H / 2]
    in_frame = (points[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= W) & (uv[:, 1] >= 0) & (uv[:, 1] <= H)
    colors = spec_vertex_colors(uv, np.linalg.norm(points, axis=1), in_frame)[:3]
    assert colors[:2].min(axis=1).max() > 0 and colors[2].max() == 0  # a, b coloured; c black

    rows, columns = np.mgrid[0:H, 0:W]
    rays = np.stack([(columns + 0.5 - W / 2) / 100, (rows + 0.5 - H / 2) / 100, np.ones((H, W))], axis=-1)
    with np.errstate(divide="ignore"):
        distance = np.where(rays[..., 1] > 0, 1 / rays[..., 1], -1)  # ground y = 1 along the ray
    hit = rays * distance[..., None]
    # Barycentrics of the hit point in the triangle (x, z plane: the triangle lies in y = 1).
    matrix = np.array([[a[0], b[0], c[0]], [a[2], b[2], c[2]], [1, 1, 1]])
    weights = np.einsum("ij,hwj->hwi", np.linalg.inv(matrix), np.stack([hit[..., 0], hit[..., 2], np.ones((H, W))], -1))
    covered = (distance > 0) & (weights.min(axis=-1) >= 0)
    margin = (distance > 0) & (weights.min(axis=-1) >= -0.02) & ~covered  # edge pixels: either way
    expected = np.round(srgb_encode(np.clip(weights, 0, 1) @ srgb_decode(colors / 255)) * 255)

    assert covered[: H // 2].sum() == 0 and covered.sum() > 2000
    assert video[: H // 2].max() == 0  # nothing above the horizon
    np.testing.assert_array_equal(video[~covered & ~margin], 0)
    assert np.abs(video[covered].astype(int) - expected[covered]).max() <= 1


def test_interpolation_is_in_linear_light_and_perspective_correct():
    # Triangle A (in frame), B (out of frame at the first frame: black), C; all at one depth, so
    # screen-space barycentrics are exact. Inside, just below edge AB's middle, the colour is the
    # sRGB encoding of the linear-light blend, tens of levels from the naive sRGB blend.
    a, b, c = [20.5, 40.5], [220.5, 40.5], [20.5, 110.5]
    uv = np.array([a, b, c])
    world = unproject(uv, np.full(3, 4.0))
    video = render_tracking(make_tracks([world], faces=np.array([[0, 1, 2]])), num_frames=1, encoding="reference")[0]

    colors = spec_vertex_colors(uv, np.linalg.norm(world, axis=1), np.array([True, False, True]))
    for px, py in [(100.5, 41.5), (60.5, 60.5), (130.5, 45.5)]:
        # Screen-space barycentrics of the pixel centre.
        matrix = np.array([[a[0], b[0], c[0]], [a[1], b[1], c[1]], [1, 1, 1]])
        weights = np.linalg.solve(matrix, [px, py, 1])
        linear = weights @ srgb_decode(colors / 255)
        expected = np.round(srgb_encode(linear) * 255)
        naive = np.round(weights @ colors)
        got = video[int(py), int(px)].astype(int)
        assert np.abs(got - expected).max() <= 1, (px, py)
        assert np.abs(got - naive).max() >= 20, (px, py)

    # Perspective: on a quad slanting away, the pixel where the 3D midpoint of its diagonal
    # projects carries the 3D blend of the corners, not the blend at the screen midpoint.
    near_end, far_end = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 0.0, 8.0])
    quad = np.array([near_end + [0, -0.3, 0], far_end + [0, -0.3, 0], far_end + [0, 0.3, 0], near_end + [0, 0.3, 0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    video = render_tracking(make_tracks([quad], faces=faces), num_frames=1, encoding="reference")[0]
    uv = quad[:, :2] / quad[:, 2:] * 100 + [W / 2, H / 2]
    colors = spec_vertex_colors(uv, np.linalg.norm(quad, axis=1), np.ones(4, bool))
    middle = (quad[0] + quad[2]) / 2
    mu = middle[:2] / middle[2] * 100 + [W / 2, H / 2]
    assert np.abs(mu - (uv[0] + uv[2]) / 2).max() > 10  # perspective really moves the midpoint
    checked = 0
    for py in np.arange(int(mu[1]) - 3, int(mu[1]) + 4) + 0.5:
        for px in np.arange(int(mu[0]) - 3, int(mu[0]) + 4) + 0.5:
            for face in faces:
                expected, weights = colour_seen_at(quad[face], colors[face], px, py)
                if weights.min() > 1e-6:  # strictly inside this triangle
                    got = video[int(py), int(px)].astype(int)
                    assert np.abs(got - expected).max() <= 1, (px, py)
                    checked += 1
    assert checked >= 40


def test_frames_are_sampled_evenly_and_background_is_black():
    # A small triangle moving 1 px per source frame; 100 source frames sampled to 9.
    frames = 100
    base = np.array([[10.5, 50.5], [14.5, 50.5], [10.5, 54.5]])
    points = [unproject(base + [t, 0], np.full(3, 3.0)) for t in range(frames)]
    video = render_tracking(make_tracks(points, faces=np.array([[0, 1, 2]])), num_frames=9)
    assert video.shape == (9, H, W, 3) and video.dtype == np.uint8
    for k, source in enumerate(sample_indices(frames, 9)):
        columns = np.flatnonzero(video[k].max(axis=(0, 2)) > 0)
        assert columns.min() == 10 + source
    assert video[:, :40].max() == 0 and video[:, 60:].max() == 0


def test_fewer_source_frames_than_asked_repeat_frames():
    points = [
        unproject(np.array([[10.5, 50.5], [30.5, 50.5], [10.5, 70.5]]) + [20 * t, 0], np.full(3, 3.0)) for t in range(3)
    ]
    video = render_tracking(make_tracks(points, faces=np.array([[0, 1, 2]])), num_frames=7)
    assert len(video) == 7
    firsts = [np.flatnonzero(frame.max(axis=(0, 2)) > 0).min() for frame in video]
    assert firsts == sorted(firsts) and len(set(firsts)) == 3


# ---------------------------------------------------------------------------------------------
# Points mode


def test_cotracker_points_are_4px_squares_in_first_frame_colours_near_on_top():
    uv0 = np.array([[40.3, 30.8], [42.9, 31.2], [100.5, 90.5], [150.0, 60.0]])
    depth0 = np.array([6.0, 3.0, 4.0, 5.0])  # point 1 is nearer than point 0, which it overlaps
    first = unproject(uv0, depth0)
    second = unproject(uv0 + [5, 3], depth0)
    visibility = np.array([[True, True, True, True], [True, True, False, True]])
    tracks = make_tracks([first, second], visibility=visibility)
    video = render_tracking(tracks, mode="points", num_frames=2, point_style="cotracker")

    inverse = 1 / depth0
    lo, hi = np.percentile(inverse, [2, 98])
    expected = np.floor(np.clip(np.stack([uv0[:, 0] / W, uv0[:, 1] / H, (inverse - lo) / (hi - lo)], 1), 0, 1) * 255)
    for t, uv in enumerate([uv0, uv0 + [5, 3]]):
        image = video[t]
        column, row = np.trunc(uv).astype(int).T
        # Point 1 (near) owns its whole square, including where point 0's square overlaps it.
        np.testing.assert_array_equal(
            image[row[1] - 2 : row[1] + 3, column[1] - 2 : column[1] + 3], np.broadcast_to(expected[1], (5, 5, 3))
        )
        # Point 0 keeps the part of its square that point 1 does not cover.
        np.testing.assert_array_equal(image[row[0], column[0] - 2], expected[0])
        assert (image[..., 0] == expected[3, 0]).sum() == 25  # exactly a 5 x 5 square (PIL-style 4 px)
        shown = (image == expected[2]).all(axis=-1).sum()
        assert shown == (25 if t == 0 else 0)  # point 2 is not visible at frame 1
    assert video[0].max(axis=-1).astype(bool).sum() < 4 * 25


def test_spatialtracker_points_are_sized_by_nearest_neighbour_and_min_max_coloured():
    # A row of points 12.6 px apart, farther to the right, plus a lone near point. Half-width is
    # floor(distance to the nearest point in (x, y, depth)) / 2, half-height half-width / 1.5.
    uv0 = np.array([[20.3, 60.3], [32.9, 60.3], [45.5, 60.3], [100.3, 90.3]])
    depth0 = np.array([4.0, 4.2, 4.4, 2.0])
    tracks = make_tracks([unproject(uv0, depth0)])
    image = render_tracking(tracks, mode="points", num_frames=1)[0]

    inverse = 1 / depth0
    lo, hi = np.percentile(inverse, [2, 98])
    red = (uv0[:, 0] - uv0[:, 0].min()) / np.ptp(uv0[:, 0])
    green = (uv0[:, 1] - uv0[:, 1].min()) / np.ptp(uv0[:, 1])
    expected = np.floor(np.stack([red, green, np.clip((inverse - lo) / (hi - lo), 0, 1)], 1) * 255).astype(np.uint8)
    assert expected[0, 0] == 0 and expected[3, 0] == 255 and expected[3, 1] == 255  # min-max normalised
    first = np.c_[uv0, depth0]
    for index in range(4):
        nearest = np.min(np.linalg.norm(np.delete(first, index, axis=0) - first[index], axis=1))
        half_width = np.floor(nearest) / 2
        half_height = half_width / 1.5
        left, right = int(uv0[index, 0] - half_width), int(uv0[index, 0] + half_width)
        top, bottom = int(uv0[index, 1] - half_height), int(uv0[index, 1] + half_height)
        rows, columns = np.nonzero((image == expected[index]).all(axis=-1))
        # Nearer points are drawn later: each row point covers the left end of the one behind it.
        assert (rows.min(), rows.max(), columns.max()) == (top, bottom, right), index
        if index in (0, 3):
            assert columns.min() == left and len(rows) == (bottom - top + 1) * (right - left + 1), index
        else:
            assert columns.min() == int(uv0[index - 1, 0] + np.floor(12.6) / 2) + 1, index


def test_a_lone_spatialtracker_point_renders():
    # No neighbour to size it by, and min-max colours of one point are 0 (matplotlib's Normalize
    # in the reference): drawn as one black pixel, without failing.
    tracks = make_tracks([unproject(np.array([[80.5, 60.5]]), np.array([3.0]))])
    image = render_tracking(tracks, mode="points", num_frames=1)
    assert image.shape == (1, H, W, 3) and image.max() == 0


def test_points_behind_the_camera_are_not_drawn():
    uv = np.array([[80.5, 60.5], [100.5, 60.5]])
    first = unproject(uv, np.array([3.0, 4.0]))
    second = first.copy()
    second[1, 2] = -4.0  # point 1 goes behind the camera
    for style in ("spatialtracker", "cotracker"):
        video = render_tracking(make_tracks([first, second]), mode="points", num_frames=2, point_style=style)
        assert video[0, :, 95:].max() > 0
        assert video[1, :, 95:].max() == 0, style


# ---------------------------------------------------------------------------------------------
# Requests that cannot be met


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "wireframe"}, "mode must be one of mesh, points"),
        ({"num_frames": 0}, "num_frames must be a positive whole number"),
        ({"point_style": "dots"}, "point_style must be one of"),
        ({"encoding": "blender"}, "encoding must be one of exact, reference"),
    ],
)
def test_bad_requests_raise_a_clear_error(kwargs, message):
    tracks = make_tracks(
        [unproject(np.array([[10.5, 10.5], [20.5, 10.5], [10.5, 20.5]]), np.full(3, 2.0))], faces=np.array([[0, 1, 2]])
    )
    with pytest.raises(RenderError, match=message):
        render_tracking(tracks, **kwargs)


def test_mesh_mode_without_faces_names_the_fix():
    tracks = make_tracks([unproject(np.array([[10.5, 10.5]]), np.full(1, 2.0))])
    with pytest.raises(RenderError, match="mesh mode needs faces.*mode 'points'"):
        render_tracking(tracks, mode="mesh")


@pytest.mark.parametrize("layout", ["uniform", "grid", "clustered", "duplicates"])
def test_nearest_neighbour_search_matches_brute_force(layout):
    # The SpatialTracker sizes rest on it; its cell search must agree with measuring every pair.
    from das_core.tracking.render.points import nearest_distance

    rng = np.random.default_rng(7)
    points = {
        "uniform": rng.random((1500, 3)) * [720, 480, 2],
        "grid": np.c_[np.mgrid[0:40, 0:30].reshape(2, -1).T * [10.0, 6.8], np.full(1200, 3.0)],
        "clustered": np.r_[rng.random((300, 3)) * 0.5, rng.random((700, 3)) * [720, 480, 1]],
        "duplicates": np.repeat(rng.random((400, 3)) * [720, 480, 1], 2, axis=0),
    }[layout]
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    distance[distance == 0] = np.inf
    np.testing.assert_allclose(nearest_distance(points), distance.min(axis=1), rtol=1e-12)


def test_nothing_in_front_of_the_camera_renders_black():
    behind = np.array([[0.0, 0, -1], [1, 0, -1], [0, 1, -1]])
    mesh = make_tracks([behind, behind], faces=np.array([[0, 1, 2]]))
    assert render_tracking(mesh, num_frames=3).max() == 0
    for style in ("spatialtracker", "cotracker"):
        assert render_tracking(make_tracks([behind]), mode="points", num_frames=1, point_style=style).max() == 0
        assert (
            render_tracking(make_tracks(np.zeros((1, 0, 3))), mode="points", num_frames=1, point_style=style).max() == 0
        )


def spinning_sphere(num_frames: int) -> Tracks:
    """A closed sphere of small triangles spinning and sliding, plus an open bowl (the sphere's
    far half) facing the camera, at an odd image size (partial 8 x 8 tiles)."""
    segments, rings = 40, 20
    theta, phi = np.meshgrid(
        np.linspace(0, np.pi, rings + 1)[1:-1], np.linspace(0, 2 * np.pi, segments, endpoint=False), indexing="ij"
    )
    corners = np.r_[
        [[0, 0, 1]],
        np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3),
        [[0, 0, -1]],
    ]
    ring = lambda r, k: 1 + r * segments + (np.arange(segments) + k) % segments  # noqa: E731
    faces = np.concatenate(
        [np.stack([np.zeros(segments, int), ring(0, 1), ring(0, 0)], 1)]
        + [np.stack([ring(r, 0), ring(r, 1), ring(r + 1, 1)], 1) for r in range(rings - 2)]
        + [np.stack([ring(r, 0), ring(r + 1, 1), ring(r + 1, 0)], 1) for r in range(rings - 2)]
        + [np.stack([ring(rings - 2, 0), ring(rings - 2, 1), np.full(segments, len(corners) - 1)], 1)]
    )
    # The bowl: only its back faces show, so skipping them wrongly would change the picture.
    bowl = faces[(corners[faces][..., 2] >= 0).all(axis=1)] + len(corners)
    faces = np.concatenate([faces, bowl])
    frames = []
    for t in range(num_frames):
        angle = 0.4 + 0.3 * t
        rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        frames.append(np.r_[corners @ rotation.T + [0.2 * t, 0.1, 3], corners + [-1.3, 0, 4 - 0.2 * t]])
    return Tracks(points=np.array(frames), world_to_camera=np.tile(np.eye(4), (num_frames, 1, 1)),
                  intrinsics=np.tile([[100.0, 0, 78.5], [0, 100.0, 58.5], [0, 0, 1]], (num_frames, 1, 1)),
                  width=157, height=117, faces=faces)  # fmt: skip


def test_hidden_surface_skipping_changes_nothing(monkeypatch):
    # Drawing the nearer winding first and skipping triangles behind covered tiles, then behind
    # covered windows, must give exactly the frames of drawing every triangle.
    from das_core.tracking.render import raster

    box = spinning_sphere(4)
    by_tiles, by_windows = [], []
    hidden, showing = raster._hidden, raster._showing
    monkeypatch.setattr(raster, "_hidden", lambda *a: by_tiles.append(hidden(*a)) or by_tiles[-1])
    monkeypatch.setattr(raster, "_showing", lambda *a: by_windows.append(showing(*a)) or by_windows[-1])
    fast = render_tracking(box, num_frames=4)
    assert sum(s.sum() for s in by_tiles) > 0  # some back faces really were skipped by each
    assert sum((~s).sum() for s in by_windows) > 0
    monkeypatch.setattr(raster, "_hidden", lambda triangles, nearest, subset: np.zeros(len(subset), bool))
    monkeypatch.setattr(raster, "_showing", lambda triangles, nearest, subset: np.ones(len(subset), bool))
    np.testing.assert_array_equal(render_tracking(box, num_frames=4), fast)
    assert (fast.max(axis=-1) > 0).mean() > 0.05


def test_frames_drawn_together_equal_frames_drawn_one_by_one(monkeypatch):
    # Mesh mode draws several frames per chunk (their triangles share candidate batches) on two
    # threads: the frames must be exactly those of drawing one frame at a time on one thread.
    from das_core.tracking.render import canvas, mesh

    tracks = spinning_sphere(7)
    chunks = []
    rasterise = mesh._rasterise
    monkeypatch.setattr(mesh, "_rasterise", lambda out, *a: chunks.append(len(out)) or rasterise(out, *a))
    together = render_tracking(tracks, num_frames=7)
    assert max(chunks) >= 3  # frames really were drawn together (two chunks on two cores)
    chunks.clear()
    monkeypatch.setattr(canvas, "_THREADS", 1)
    monkeypatch.setattr(mesh, "_MESH_CHUNK_PIXELS", 1)
    np.testing.assert_array_equal(render_tracking(tracks, num_frames=7), together)
    assert chunks == [1] * 7
    assert (together.max(axis=-1) > 0).mean() > 0.05


def test_renders_without_tqdm_as_in_blender(monkeypatch):
    # The add-on ships no tqdm; only progress=True may need it.
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    tracks = make_tracks(
        [unproject(np.array([[10.5, 10.5], [40.5, 10.5], [10.5, 40.5]]), np.full(3, 2.0))] * 3,
        faces=np.array([[0, 1, 2]]),
    )
    assert render_tracking(tracks, num_frames=3).max() > 0
    assert render_tracking(tracks, mode="points", num_frames=3).max() > 0
    with pytest.raises(ImportError):
        render_tracking(tracks, num_frames=3, progress=True)


@pytest.mark.parametrize("count", [0, 5, 40_000])
def test_projection_in_blocks_equals_one_projection(count):
    # The renderer projects in blocks (so OpenBLAS keeps its threads asleep); the numbers must be
    # those of one `camera.project` call, block edges included, to float64 rounding (a BLAS may
    # pick another kernel for another block size; a point out of place is off by pixels).
    from das_core.tracking.camera import project
    from das_core.tracking.render.canvas import project_in_blocks

    rng = np.random.default_rng(count)
    points = rng.normal(size=(count, 3)) + [0, 0, 2]
    world_to_camera = np.eye(4)
    world_to_camera[:3, 3] = [0.1, -0.2, 0.5]
    uv, depth = project_in_blocks(points, world_to_camera, intrinsics())
    expected_uv, expected_depth = project(points, world_to_camera, intrinsics())
    assert uv.shape == expected_uv.shape and depth.shape == expected_depth.shape
    np.testing.assert_allclose(uv, expected_uv, rtol=1e-9, atol=1e-9)  # NaN (behind the camera) matches NaN
    np.testing.assert_allclose(depth, expected_depth, rtol=1e-9, atol=1e-9)
