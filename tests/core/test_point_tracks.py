"""Point tracks (Wan-Move's control) on hand-built scenes, with expected positions and visibility
worked out here from the geometry, and `das render-tracks` writing what Wan-Move's generate.py loads."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.cli import main
from das_core.errors import DasError
from das_core.tracking.camera import project
from das_core.tracking.depth_buffer import rasterise_depth
from das_core.tracking.point_tracks import PointTracksError, draw_point_tracks, point_tracks, wan_move_arrays
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import letterbox_rect, read_video, sample_indices, video_info

W, H = 160, 120
FOCAL = 100.0
K = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1.0]])
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def quad(centre_x: float, depth: float, half: float = 1.0) -> np.ndarray:
    """A square facing the camera: corners [4, 3] around (centre_x, 0, depth)."""
    return np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]]) + [centre_x, 0, depth]


def sphere(centre, radius: float, rings: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere: vertices [V, 3] and triangles [F, 3]."""
    theta, phi = np.meshgrid(
        np.linspace(0, np.pi, rings), np.linspace(0, 2 * np.pi, 2 * rings, endpoint=False), indexing="ij"
    )
    unit = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], axis=-1)
    around = 2 * rings
    i, j = np.meshgrid(np.arange(rings - 1), np.arange(around), indexing="ij")
    a, b = (i * around + j).ravel(), (i * around + (j + 1) % around).ravel()
    c, d = a + around, b + around
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return unit.reshape(-1, 3) * radius + np.asarray(centre, dtype=float), faces


def make_tracks(points, faces, world_to_camera=None, visibility=None) -> Tracks:
    points = np.asarray(points, dtype=np.float64)
    frames = len(points)
    return Tracks(
        points=points,
        world_to_camera=np.tile(np.eye(4), (frames, 1, 1)) if world_to_camera is None else world_to_camera,
        intrinsics=np.tile(K, (frames, 1, 1)),
        width=W,
        height=H,
        faces=faces,
        visibility=visibility,
        fps=24,
    )


def sliding_quad(centres, depth: float = 4.0) -> Tracks:
    return make_tracks([quad(x, depth) for x in centres], QUAD_FACES)


# The quad (2 x 2 at depth 4, 50 px across) slides left to right in front of a sphere (radius 1.5
# at depth 6, about 52 px across, static). Both stay inside the image in every frame.
QUAD_CENTRES = np.linspace(-2.1, 2.1, 15)


def quad_before_sphere(visibility: np.ndarray | None = None) -> tuple[Tracks, int]:
    vertices, faces = sphere([0, 0, 6], 1.5)
    points = [np.concatenate([vertices, quad(x, 4.0)]) for x in QUAD_CENTRES]
    return make_tracks(points, np.concatenate([faces, QUAD_FACES + len(vertices)]), visibility=visibility), len(
        vertices
    )


def quad_rect(centre_x: float) -> tuple[float, float, float, float]:
    """Pixel rectangle (left, top, right, bottom) the quad covers."""
    scale = FOCAL / 4.0
    return W / 2 + (centre_x - 1) * scale, H / 2 - scale, W / 2 + (centre_x + 1) * scale, H / 2 + scale


def within(xy: np.ndarray, rect, margin: float) -> np.ndarray:
    left, top, right, bottom = rect
    x, y = xy[..., 0], xy[..., 1]
    return (x > left + margin) & (x < right - margin) & (y > top + margin) & (y < bottom - margin)


def test_quad_hides_the_sphere_points_it_passes_over():
    tracks, _ = quad_before_sphere()
    points = point_tracks(tracks, num_frames=len(QUAD_CENTRES), size=(W, H), spacing=6)
    on_quad = within(points.xy[0], quad_rect(QUAD_CENTRES[0]), -1)
    assert on_quad.sum() > 20 and (~on_quad).sum() > 40

    # The quad's points ride along with it (25 px per scene unit) and are never hidden.
    shift = (QUAD_CENTRES - QUAD_CENTRES[0]) * FOCAL / 4.0
    moved = points.xy[:, on_quad] - points.xy[0, on_quad]
    np.testing.assert_allclose(moved[..., 0], np.broadcast_to(shift[:, None], moved.shape[:2]), atol=1e-3)
    np.testing.assert_allclose(moved[..., 1], 0, atol=1e-3)
    assert points.visible[:, on_quad].all()

    # The sphere's points stay put; each is hidden exactly while the quad covers it (points within
    # a pixel of the quad's outline are left out: the buffer is sampled at pixel centres).
    sphere_xy = points.xy[:, ~on_quad]
    np.testing.assert_allclose(sphere_xy, sphere_xy[:1].repeat(len(shift), 0), atol=1e-3)
    for frame, centre in enumerate(QUAD_CENTRES):
        covered = within(sphere_xy[frame], quad_rect(centre), 1.0)
        clear = ~within(sphere_xy[frame], quad_rect(centre), -1.0)
        assert not points.visible[frame, ~on_quad][covered].any()
        assert points.visible[frame, ~on_quad][clear].all()
    assert (~points.visible[:, ~on_quad]).sum() > 40  # the test hid something


def named_quad_before_sphere() -> Tracks:
    """`quad_before_sphere` with the exporter's object names and vertex counts."""
    tracks, sphere_vertices = quad_before_sphere()
    tracks.extra = {"objects": ["Sphere", "Quad"], "object_vertex_counts": [sphere_vertices, 4]}
    return tracks


@pytest.mark.parametrize("name", ["Sphere", "Quad"])
def test_chosen_objects_keep_only_their_points_and_others_still_hide_them(name):
    tracks = named_quad_before_sphere()
    every = point_tracks(tracks, num_frames=len(QUAD_CENTRES), size=(W, H), spacing=6)
    on_quad = within(every.xy[0], quad_rect(QUAD_CENTRES[0]), -1)
    chosen = point_tracks(tracks, num_frames=len(QUAD_CENTRES), size=(W, H), spacing=6, objects=[name])

    # The same points as with every object, those on the chosen one, hidden in the same frames.
    on_chosen = on_quad if name == "Quad" else ~on_quad
    np.testing.assert_array_equal(chosen.xy, every.xy[:, on_chosen])
    np.testing.assert_array_equal(chosen.visible, every.visible[:, on_chosen])
    if name == "Sphere":
        assert (~chosen.visible).sum() > 40  # the quad, not chosen, still passes in front of them
    both = point_tracks(tracks, num_frames=2, size=(W, H), spacing=6, objects=["Quad", "Sphere"])
    assert both.num_points == every.num_points


@pytest.mark.parametrize(
    ("extra", "objects", "message"),
    [
        (None, ["Lamp"], "no object named 'Lamp' in these tracks; they have 'Sphere', 'Quad'"),
        ({}, ["Quad"], "export the scene again with this version of das"),
        (None, "Quad", "objects must be a list of one or more object names"),
        (None, [], "objects must be a list of one or more object names"),
    ],
)
def test_choosing_objects_the_tracks_cannot_name_is_an_error(extra, objects, message):
    tracks = named_quad_before_sphere()
    if extra is not None:
        tracks.extra = extra
    with pytest.raises(DasError, match=message):
        point_tracks(tracks, num_frames=2, size=(W, H), objects=objects)


def test_a_chosen_object_out_of_view_at_the_first_frame_is_an_error():
    tracks = named_quad_before_sphere()
    tracks.points[:, -4:, 0] += 50.0  # the quad far off to the right
    with pytest.raises(PointTracksError, match="none of the chosen objects is visible in the first frame"):
        point_tracks(tracks, num_frames=2, size=(W, H), objects=["Quad"])


def test_points_of_an_object_not_rendered_are_hidden_and_hide_nothing():
    hidden_frames = slice(6, 9)  # the quad covers the sphere's middle here
    probe, sphere_vertices = quad_before_sphere()
    visibility = np.ones((probe.num_frames, probe.num_points), dtype=bool)
    visibility[hidden_frames, sphere_vertices:] = False
    tracks, _ = quad_before_sphere(visibility)
    points = point_tracks(tracks, num_frames=len(QUAD_CENTRES), size=(W, H), spacing=6)
    on_quad = within(points.xy[0], quad_rect(QUAD_CENTRES[0]), -1)
    assert not points.visible[hidden_frames, on_quad].any()
    assert points.visible[hidden_frames, ~on_quad].all()  # nothing covers the sphere then
    assert points.visible[:6, on_quad].all() and points.visible[9:, on_quad].all()


def test_points_leaving_the_frame_are_invisible_there():
    centres = np.linspace(0.0, 6.0, 13)  # 150 px to the right: the quad leaves through the right edge
    points = point_tracks(sliding_quad(centres), num_frames=len(centres), size=(W, H), spacing=5)
    shift = (centres - centres[0]) * FOCAL / 4.0
    x = points.xy[:, :, 0]
    np.testing.assert_allclose(x - x[0], np.broadcast_to(shift[:, None], x.shape), atol=1e-3)  # tracked past the edge
    np.testing.assert_array_equal(points.visible, x < W)
    assert points.visible[0].all() and not points.visible[-1].any()


def test_points_behind_the_camera_are_invisible_and_keep_a_position():
    depths = np.array([4.0, 2.0, 0.5, -1.0, -3.0])  # the quad flies through the camera
    tracks = make_tracks([quad(0, z, half=0.2) for z in depths], QUAD_FACES)
    points = point_tracks(tracks, num_frames=len(depths), size=(W, H), spacing=2)
    assert points.visible[:2].all() and not points.visible[3:].any()
    assert np.isfinite(points.xy).all()
    np.testing.assert_array_equal(points.xy[3], points.xy[2])  # held from the last frame in front
    np.testing.assert_array_equal(points.xy[4], points.xy[2])


def look_from(position, yaw: float) -> np.ndarray:
    """World-to-camera (OpenCV) of a camera at `position` turned by `yaw` radians about the y axis."""
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ np.asarray(position, dtype=float)
    return matrix


@pytest.mark.parametrize("size", [(W, H), (832, 480)])
def test_moving_camera_positions_are_projections_of_the_surface_point(size):
    frames = 9
    cameras = np.stack([look_from([0.3 * t, 0.1 * t, 0.2 * t], 0.04 * t) for t in range(frames)])
    # A static, tilted quad (two triangles), seen whole at frame 0.
    corners = np.array([[-1.5, -1.0, 5.0], [1.5, -1.0, 6.0], [1.5, 1.0, 6.0], [-1.5, 1.0, 5.0]])
    tracks = make_tracks(np.repeat(corners[None], frames, 0), QUAD_FACES, world_to_camera=cameras)
    points = point_tracks(tracks, num_frames=frames, size=size, spacing=7)

    left, top, content_width, content_height = letterbox_rect(W, H, *size)
    scale = np.array([content_width / W, content_height / H])
    # Frame 0: each point sits at a pixel centre; its surface point is where that pixel's ray meets
    # the quad's plane (x = -1.5 + 3 (z - 5), i.e. z = 5 + (x + 1.5) / 3).
    first = points.xy[0].astype(np.float64)
    assert np.allclose(first % 1, 0.5, atol=1e-4)
    ray = np.c_[(first - [left, top]) / scale - K[:2, 2], np.full(len(first), FOCAL)] / FOCAL  # z = 1
    depth = (5 + 1.5 / 3) / (1 - ray[:, 0] / 3)
    surface = ray * depth[:, None]
    for t in range(frames):
        uv, z = project(surface, cameras[t], K)
        assert (z > 0).all()
        np.testing.assert_allclose(points.xy[t], uv * scale + [left, top], atol=1e-3)
    assert points.visible[0].all()


def test_letterboxed_grid_stays_in_the_camera_frame():
    tracks = make_tracks([quad(0, 1.0, half=5.0)], QUAD_FACES)  # fills the whole view
    points = point_tracks(tracks, num_frames=1, size=(832, 480), spacing=16)
    left, top, content_width, content_height = letterbox_rect(W, H, 832, 480)
    assert (left, top, content_width, content_height) == (96, 0, 640, 480)
    x, y = points.xy[0, :, 0], points.xy[0, :, 1]
    assert x.min() >= left and x.max() < left + content_width and y.min() >= 0 and y.max() < 480
    assert len(np.unique(x)) == 40 and len(np.unique(y)) == 30  # every grid pixel: the quad covers all
    np.testing.assert_allclose(np.diff(np.unique(x)), 16)
    assert points.visible.all()


@pytest.mark.parametrize("source_frames", [12, 200])
def test_frames_are_resampled_evenly_to_81(source_frames):
    centres = np.linspace(-1.0, 1.0, source_frames)
    points = point_tracks(sliding_quad(centres), num_frames=81, size=(W, H), spacing=10)
    expected = sample_indices(source_frames, 81)
    assert points.xy.shape == (81, points.num_points, 2) and points.visible.shape == (81, points.num_points)
    np.testing.assert_array_equal(points.source_frames, expected)
    shift = (centres[expected] - centres[0]) * FOCAL / 4.0
    moved = points.xy[:, :, 0] - points.xy[0, :, 0]
    np.testing.assert_allclose(moved, np.broadcast_to(shift[:, None], moved.shape), atol=1e-3)


def test_depth_buffer_of_a_floor_through_the_camera_plane():
    # A floor 1 unit below the camera, from behind it to depth 20: every pixel row below the
    # horizon sees it at depth f / (v - cy), computed per pixel centre; rows above see nothing.
    floor = np.array([[-50, 1, -5], [50, 1, -5], [50, 1, 20], [-50, 1, 20]], dtype=float)
    buffer = rasterise_depth(floor, QUAD_FACES, K, W, H)
    rows = np.arange(H) + 0.5
    with np.errstate(divide="ignore"):
        expected = np.where(rows > H / 2, FOCAL / (rows - H / 2), np.inf)
    expected[expected > 20] = np.inf
    np.testing.assert_allclose(buffer.depth, np.broadcast_to(expected[:, None], (H, W)), rtol=1e-9)
    assert ((buffer.triangle >= 0) == np.isfinite(buffer.depth)).all()
    assert np.allclose(buffer.barycentric[np.isfinite(buffer.depth)].sum(axis=1), 1.0)

    # Asking about a few pixels gives the same answers there and leaves the rest empty.
    asked = np.zeros((H, W), dtype=bool)
    asked[::7, ::5] = True
    sparse = rasterise_depth(floor, QUAD_FACES, K, W, H, pixels=asked)
    np.testing.assert_array_equal(sparse.depth[asked], buffer.depth[asked])
    np.testing.assert_array_equal(sparse.triangle[asked], buffer.triangle[asked])
    assert np.isinf(sparse.depth[~asked]).all() and (sparse.triangle[~asked] == -1).all()


def test_overlay_draws_filled_and_hollow_dots():
    # Two still quads side by side; the right one is not rendered in frame 1, so its dots are hollow.
    visibility = np.ones((2, 8), dtype=bool)
    visibility[1, 4:] = False
    both = np.concatenate([quad(-1.2, 4.0), quad(1.2, 4.0)])
    tracks = make_tracks([both, both], np.concatenate([QUAD_FACES, QUAD_FACES + 4]), visibility=visibility)
    points = point_tracks(tracks, num_frames=2, size=(W, H), spacing=12)
    frames = draw_point_tracks(points, radius=3)
    assert frames.shape == (2, H, W, 3) and frames.dtype == np.uint8
    right = points.xy[0, :, 0] > W / 2
    np.testing.assert_array_equal(points.visible[1], ~right)
    centre = np.floor(points.xy[1]).astype(int)  # the pixel under each dot's centre
    lit = frames[1, centre[:, 1], centre[:, 0]].max(axis=1) > 0
    np.testing.assert_array_equal(lit, ~right)  # filled dots light their centre, rings leave it dark
    ring = frames[1, centre[right, 1], centre[right, 0] + 3].max(axis=1) > 0
    assert ring.all()
    background = np.full((H, W, 3), 40, dtype=np.uint8)
    assert (draw_point_tracks(points, background)[0] == 40).mean() > 0.5


@pytest.mark.parametrize(
    ("tracks", "arguments", "message"),
    [
        (make_tracks([quad(0, 4)], None), {}, "no faces"),
        (sliding_quad([0.0]), {"spacing": 0}, "spacing must be a whole number of pixels, at least 1"),
        (sliding_quad([0.0]), {"spacing": -4}, "spacing must be a whole number of pixels, at least 1"),
        (sliding_quad([0.0]), {"size": (0, 480)}, "size must be (width, height)"),
        (sliding_quad([0.0], depth=-4.0), {}, "no surface is visible in the first frame"),
    ],
)
def test_bad_requests_name_the_problem(tracks, arguments, message):
    with pytest.raises(PointTracksError, match=message.replace("(", r"\(").replace(")", r"\)")):
        point_tracks(tracks, **{"num_frames": 5, "size": (W, H), **arguments})


def test_wan_move_arrays_have_the_reference_layout():
    points = point_tracks(sliding_quad([0.0, 0.5]), num_frames=81, size=(W, H), spacing=8)
    tracks, visibility = wan_move_arrays(points)
    assert tracks.shape == (1, 81, points.num_points, 2) and tracks.dtype == np.float32
    assert visibility.shape == (1, 81, points.num_points) and visibility.dtype == np.bool_


# ----------------------------------------------------------------------------------------------
# das render-tracks


def test_render_tracks_writes_what_wan_move_loads(tmp_path, capsys):
    tracks, _ = quad_before_sphere()
    tracks.save(tmp_path / "scene.npz")
    out = tmp_path / "wan"
    assert main(["render-tracks", str(tmp_path / "scene.npz"), "-o", str(out), "--for", "wan-move", "--quiet"]) == 0

    # As generate.py does: np.load, then WanMove.generate drops the batch of one (ndim 4 / 3) and
    # scales x and y in place to the size it generates.
    track = np.load(out / "tracks.npy")
    visibility = np.load(out / "visibility.npy")
    assert track.dtype == np.float32 and track.ndim == 4 and track.shape[:2] == (1, 81) and track.shape[3] == 2
    assert visibility.dtype == np.bool_ and visibility.shape == track.shape[:3]
    track = track[0]
    track[..., 0] *= 832 / 832  # an 832x480 image generates at 832x480
    expected = point_tracks(tracks, 81, (832, 480), 16)
    np.testing.assert_array_equal(track, expected.xy)
    np.testing.assert_array_equal(visibility[0], expected.visible)
    info = video_info(out / "overlay.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (832, 480, 81, 16.0)
    assert not (out / "image.png").exists()
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "over 81 frames 832x480, letterboxed from 160x120 from 15 source frames" in summary[0]


def test_render_tracks_objects_option(tmp_path, capsys):
    tracks = named_quad_before_sphere()
    tracks.save(tmp_path / "scene.npz")
    out = tmp_path / "wan"
    arguments = ["render-tracks", str(tmp_path / "scene.npz"), "-o", str(out), "--for", "wan-move", "--quiet"]
    assert main([*arguments, "--frames", "5", "--objects", "Quad"]) == 0
    expected = point_tracks(tracks, 5, (832, 480), 16, objects=["Quad"])
    np.testing.assert_array_equal(np.load(out / "tracks.npy")[0], expected.xy)

    capsys.readouterr()
    assert main([*arguments, "--objects", "Quad", "Lamp"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no object named 'Lamp' in these tracks; they have 'Sphere', 'Quad'" in error[0]
    tracks.extra = {}
    tracks.save(tmp_path / "scene.npz")
    assert main([*arguments, "--objects", "Quad"]) == 1
    assert "export the scene again with this version of das" in capsys.readouterr().err


def test_render_tracks_fits_the_reference_image(tmp_path):
    from PIL import Image

    sliding_quad([0.0, 0.4, 0.8]).save(tmp_path / "scene.npz")
    Image.fromarray(np.full((H, W, 3), 90, dtype=np.uint8)).save(tmp_path / "ref.png")
    out = tmp_path / "wan"
    arguments = ["--for", "wan-move", "--frames", "5", "--size", "96x64", "--spacing", "8", "--quiet"]
    code = main(
        ["render-tracks", str(tmp_path / "scene.npz"), "-o", str(out), "--image", str(tmp_path / "ref.png"), *arguments]
    )
    assert code == 0
    image = read_video(out / "image.png")[0]
    left, top, content_width, content_height = letterbox_rect(W, H, 96, 64)
    assert image.shape == (64, 96, 3)
    assert (image[top : top + content_height, left : left + content_width] == 90).all()
    assert image[:, :left].max() == 0  # the bars are black, as in the tracks' letterbox
    overlay = read_video(out / "overlay.mp4")
    assert overlay.shape == (5, 64, 96, 3)
    assert np.abs(overlay[0, top + 2 : top + 6, left + 1 : left + 3].astype(int) - 90).max() < 12  # image shows


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "832*480"], "--size '832*480': expected WIDTHxHEIGHT"),
        (["--size", "0x480"], "expected WIDTHxHEIGHT in whole pixels, both positive"),
        (["--spacing", "0"], "spacing must be a whole number of pixels, at least 1"),
        (["--frames", "80"], "Wan-Move needs 4n+1 frames"),
    ],
)
def test_render_tracks_bad_arguments_exit_1_with_one_line(tmp_path, capsys, arguments, message):
    sliding_quad([0.0, 0.5]).save(tmp_path / "scene.npz")
    out = tmp_path / "wan"
    code = main(
        ["render-tracks", str(tmp_path / "scene.npz"), "-o", str(out), "--for", "wan-move", "--quiet", *arguments]
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(error) == 1 and message in error[0]
    assert not out.exists()


@pytest.mark.parametrize("problem", ["no faces", "NaN"])
def test_render_tracks_bad_tracks_files_exit_1(tmp_path, capsys, problem):
    tracks = sliding_quad([0.0, 0.5])
    if problem == "no faces":
        tracks.faces = None
        tracks.save(tmp_path / "scene.npz")
    else:
        points = tracks.points.copy()
        points[1, 2, 0] = np.nan
        np.savez(
            tmp_path / "scene.npz",
            format="das-tracks/1",
            points=points,
            world_to_camera=tracks.world_to_camera,
            intrinsics=tracks.intrinsics,
            width=W,
            height=H,
            faces=tracks.faces,
        )
    code = main(["render-tracks", str(tmp_path / "scene.npz"), "-o", str(tmp_path / "wan"), "--for", "wan-move"])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert (
        ("have no faces" in error)
        if problem == "no faces"
        else ("points has a non-finite value (NaN or inf) at index [1, 2, 0]" in error)
    )
