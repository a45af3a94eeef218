"""Camera conventions: analytic cases without Blender, and many random cameras against real Blender.

The Blender tests compare `project(blender_camera_to_opencv(...))` with
`bpy_extras.object_utils.world_to_camera_view`, Blender's own projection, for random cameras with
shift, non-square pixels, every sensor fit, portrait and landscape images, and scaled camera objects.
"""

from __future__ import annotations

import numpy as np
import pytest

from das_core.errors import DasError
from das_core.tracking.camera import CameraError, blender_camera_to_opencv, project

DEFAULT_CAMERA = dict(
    lens=50.0,
    sensor_width=36.0,
    sensor_height=24.0,
    sensor_fit="AUTO",
    shift_x=0.0,
    shift_y=0.0,
    resolution_x=1920,
    resolution_y=1080,
)


def test_identity_camera_looks_down_minus_z_with_y_up():
    world_to_camera, intrinsics = blender_camera_to_opencv(np.eye(4), **DEFAULT_CAMERA)
    fx = 50.0 * 1920 / 36.0
    np.testing.assert_allclose(intrinsics, [[fx, 0, 960], [0, fx, 540], [0, 0, 1]])
    uv, depth = project(np.array([[0.0, 0.0, -10.0], [1.0, 1.0, -10.0]]), world_to_camera, intrinsics)
    np.testing.assert_allclose(depth, [10.0, 10.0])
    np.testing.assert_allclose(uv[0], [960, 540])
    # World +x is image right, world +y (Blender's up) is image up, i.e. smaller v.
    np.testing.assert_allclose(uv[1], [960 + fx * 0.1, 540 - fx * 0.1])


def test_vertical_fit_spans_the_sensor_over_the_image_height():
    _, intrinsics = blender_camera_to_opencv(np.eye(4), **{**DEFAULT_CAMERA, "sensor_fit": "VERTICAL"})
    assert intrinsics[1, 1] == pytest.approx(50.0 * 1080 / 24.0)
    assert intrinsics[0, 0] == pytest.approx(intrinsics[1, 1])


def test_auto_fit_uses_the_longer_side_for_portrait_images():
    camera = {**DEFAULT_CAMERA, "resolution_x": 480, "resolution_y": 720}
    _, intrinsics = blender_camera_to_opencv(np.eye(4), **camera)
    # AUTO: sensor_width spans the longer side, here the height.
    assert intrinsics[1, 1] == pytest.approx(50.0 * 720 / 36.0)


def test_shift_moves_the_principal_point_by_the_fitted_side():
    camera = {**DEFAULT_CAMERA, "shift_x": 0.1, "shift_y": 0.2}
    _, intrinsics = blender_camera_to_opencv(np.eye(4), **camera)
    # Positive shift moves the view right/up, so the optical axis lands left/below the centre.
    assert intrinsics[0, 2] == pytest.approx(960 - 0.1 * 1920)
    assert intrinsics[1, 2] == pytest.approx(540 + 0.2 * 1920)


def test_pixel_aspect_makes_fy_differ_from_fx():
    _, intrinsics = blender_camera_to_opencv(np.eye(4), **DEFAULT_CAMERA, pixel_aspect_x=2.0, pixel_aspect_y=1.0)
    assert intrinsics[1, 1] == pytest.approx(2.0 * intrinsics[0, 0])


def test_camera_object_scale_is_ignored():
    matrix = np.eye(4)
    matrix[:3, 3] = [1.0, 2.0, 3.0]
    scaled = matrix.copy()
    scaled[:3, :3] = np.diag([3.0, 0.5, 2.0])
    plain, _ = blender_camera_to_opencv(matrix, **DEFAULT_CAMERA)
    from_scaled, _ = blender_camera_to_opencv(scaled, **DEFAULT_CAMERA)
    np.testing.assert_allclose(from_scaled, plain)


def test_points_behind_the_camera_get_no_pixel():
    world_to_camera, intrinsics = blender_camera_to_opencv(np.eye(4), **DEFAULT_CAMERA)
    uv, depth = project(np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]]), world_to_camera, intrinsics)
    np.testing.assert_allclose(depth, [-5.0, 0.0])
    assert np.isnan(uv).all()


@pytest.mark.parametrize(
    "change, words",
    [
        ({"camera_type": "ORTHO"}, "Perspective"),
        ({"camera_type": "PANO"}, "not supported"),
        ({"sensor_fit": "DIAGONAL"}, "sensor_fit"),
        ({"lens": 0.0}, "lens"),
        ({"sensor_height": float("nan")}, "sensor_height"),
        ({"shift_x": float("inf")}, "shift_x"),
        ({"resolution_x": 0}, "resolution_x"),
        ({"resolution_y": 10.5}, "resolution_y"),
        ({"resolution_y": float("nan")}, "resolution_y"),
        ({"resolution_x": "720"}, "resolution_x"),
        ({"resolution_x": float("inf")}, "resolution_x"),
        ({"pixel_aspect_y": -1.0}, "pixel_aspect_y"),
        ({"matrix_world": np.eye(3)}, "4x4"),
        ({"matrix_world": np.diag([0.0, 1.0, 1.0, 1.0])}, "scale 0"),
    ],
)
def test_bad_camera_numbers_name_the_problem(change, words):
    arguments = {"matrix_world": np.eye(4), **DEFAULT_CAMERA, **change}
    with pytest.raises(CameraError, match=words) as raised:
        blender_camera_to_opencv(**arguments)
    assert isinstance(raised.value, DasError)


# --- real Blender -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blender_camera():
    """A throwaway scene and camera object in real Blender (bpy), removed afterwards."""
    bpy = pytest.importorskip("bpy")
    scene = bpy.data.scenes.new("das_camera_test")
    data = bpy.data.cameras.new("das_camera_test")
    camera = bpy.data.objects.new("das_camera_test", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    yield scene, camera
    bpy.data.objects.remove(camera)
    bpy.data.cameras.remove(data)
    bpy.data.scenes.remove(scene)


def _random_camera(rng: np.random.Generator, scene, camera, fit: str) -> None:
    import mathutils

    render = scene.render
    render.resolution_x = int(rng.integers(64, 2049))
    render.resolution_y = int(rng.integers(64, 2049))
    render.resolution_percentage = 100
    render.pixel_aspect_x = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.5 else 1.0
    render.pixel_aspect_y = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.5 else 1.0
    data = camera.data
    data.type = "PERSP"
    data.lens = float(rng.uniform(12.0, 135.0))
    data.sensor_width = float(rng.uniform(18.0, 40.0))
    data.sensor_height = float(rng.uniform(18.0, 40.0))
    data.sensor_fit = fit
    data.shift_x = float(rng.uniform(-0.6, 0.6))
    data.shift_y = float(rng.uniform(-0.6, 0.6))
    rotation = mathutils.Euler(rng.uniform(-np.pi, np.pi, 3).tolist()).to_matrix().to_4x4()
    scale = mathutils.Matrix.Diagonal((*rng.uniform(0.2, 3.0, 3).tolist(), 1.0))
    camera.matrix_world = mathutils.Matrix.Translation(rng.uniform(-5, 5, 3).tolist()) @ rotation @ scale


def _convert(scene, camera) -> tuple[np.ndarray, np.ndarray]:
    """What the add-on does: read the camera numbers from bpy, convert with das_core.tracking.camera."""
    render, data = scene.render, camera.data
    return blender_camera_to_opencv(
        np.array(camera.matrix_world),
        data.lens,
        data.sensor_width,
        data.sensor_height,
        data.sensor_fit,
        data.shift_x,
        data.shift_y,
        render.resolution_x,
        render.resolution_y,
        render.pixel_aspect_x,
        render.pixel_aspect_y,
        camera_type=data.type,
    )


def _points_around_the_view(rng: np.random.Generator, camera, scene, count: int = 30) -> np.ndarray:
    """World points over the image and 25 % beyond each side, 1 to 50 units deep; the last 5 behind.

    Placed with Blender's own view frame and (normalised) camera matrix, not with das_core.
    """
    from mathutils import Vector

    top_right, bottom_right, bottom_left = camera.data.view_frame(scene=scene)[:3]
    across = rng.uniform(-0.25, 1.25, (count, 2))
    depth = rng.uniform(1.0, 50.0, count) / -top_right.z
    local = (
        np.column_stack(
            [
                bottom_left.x + across[:, 0] * (bottom_right.x - bottom_left.x),
                bottom_right.y + across[:, 1] * (top_right.y - bottom_right.y),
                np.full(count, top_right.z),
            ]
        )
        * depth[:, None]
    )
    local[-5:, 2] *= -1.0  # behind the camera
    to_world = camera.matrix_world.normalized()
    return np.array([to_world @ Vector(point) for point in local])


@pytest.mark.blender
@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
def test_matches_blender_world_to_camera_view_for_random_cameras(blender_camera, fit):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene, camera = blender_camera
    rng = np.random.default_rng({"AUTO": 11, "HORIZONTAL": 12, "VERTICAL": 13}[fit])
    worst = 0.0
    shapes = set()
    for _ in range(40):
        _random_camera(rng, scene, camera, fit)
        width, height = scene.render.resolution_x, scene.render.resolution_y
        shapes.add("landscape" if width > height else "portrait")
        points = _points_around_the_view(rng, camera, scene)
        world_to_camera, intrinsics = _convert(scene, camera)
        uv, depth = project(points, world_to_camera, intrinsics)

        expected = np.array([world_to_camera_view(scene, camera, Vector(p)) for p in points])
        np.testing.assert_allclose(depth, expected[:, 2], rtol=1e-5, atol=1e-4)
        front = depth > 0
        assert front.sum() == 25 and np.isnan(uv[~front]).all()
        expected_uv = np.column_stack([expected[:, 0] * width, (1.0 - expected[:, 1]) * height])
        error = np.abs(uv[front] - expected_uv[front]).max()
        worst = max(worst, error)
    assert shapes == {"landscape", "portrait"}
    print(f"{fit}: max projection error {worst:.5f} px over 40 cameras")
    assert worst < 0.01, f"max projection error {worst:.5f} px against Blender"


@pytest.mark.blender
def test_orthographic_blender_camera_is_refused(blender_camera):
    scene, camera = blender_camera
    camera.data.type = "ORTHO"
    try:
        with pytest.raises(CameraError, match="Perspective"):
            _convert(scene, camera)
    finally:
        camera.data.type = "PERSP"
