"""Camera conventions: Blender camera numbers to pinhole intrinsics and an OpenCV world_to_camera.

The whole project uses the OpenCV camera convention: x right, y down, z forward, and pixel
coordinates where (0, 0) is the top-left corner of the image (the top-left pixel's centre is at
(0.5, 0.5)). Blender cameras look down their local -Z axis with +Y up; this module is the one place
that converts. Pure numpy: the add-on reads the numbers from bpy and hands them over, so the
conversion is tested with and without Blender.

Blender's rules, reproduced from its camera code (`BKE_camera_params_compute_viewplane`):
- The sensor size is `sensor_height` for VERTICAL fit and `sensor_width` otherwise (AUTO too).
- The fit decides which image side the sensor spans: HORIZONTAL spans the width, VERTICAL the
  height, AUTO the longer side of the image as displayed (resolution times pixel aspect).
- Pixel aspect makes pixels non-square: fy = fx * pixel_aspect_x / pixel_aspect_y.
- Shift moves the image window by `shift` times the fitted side's length, in both x and y.
- Object scale on the camera is ignored (Blender normalises the camera matrix's axes).
"""

from __future__ import annotations

import numpy as np

from das_core.errors import DasError

__all__ = ["SENSOR_FITS", "CameraError", "blender_camera_to_opencv", "project"]

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")

# Blender camera axes (x right, y up, looking down -z) to OpenCV axes (x right, y down, z forward).
_BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


class CameraError(DasError):
    """Camera numbers that cannot make a pinhole camera; the message names the value."""


def blender_camera_to_opencv(
    matrix_world,
    lens: float,
    sensor_width: float,
    sensor_height: float,
    sensor_fit: str,
    shift_x: float,
    shift_y: float,
    resolution_x: int,
    resolution_y: int,
    pixel_aspect_x: float = 1.0,
    pixel_aspect_y: float = 1.0,
    *,
    camera_type: str = "PERSP",
) -> tuple[np.ndarray, np.ndarray]:
    """Blender camera numbers to (world_to_camera float64 [4, 4], intrinsics float64 [3, 3]).

    `matrix_world` is the camera object's world matrix (any 4x4 array-like, e.g. a mathutils
    Matrix converted with `np.array`); `lens`, `sensor_width`, `sensor_height` are in mm;
    `resolution_x` x `resolution_y` is the rendered image size (already scaled by the render
    percentage); the intrinsics are in pixels of that image. `camera_type` is Blender's
    `camera.type`: only "PERSP" has pinhole intrinsics, so "ORTHO" and "PANO" raise `CameraError`.
    """
    if camera_type != "PERSP":
        raise CameraError(
            f"camera type {camera_type!r} is not supported: the tracking video needs a perspective "
            "camera (set the camera's Type to Perspective)"
        )
    if sensor_fit not in SENSOR_FITS:
        raise CameraError(f"sensor_fit must be one of {', '.join(SENSOR_FITS)}, got {sensor_fit!r}")
    for name, value in (
        ("lens", lens),
        ("sensor_width", sensor_width),
        ("sensor_height", sensor_height),
        ("pixel_aspect_x", pixel_aspect_x),
        ("pixel_aspect_y", pixel_aspect_y),
    ):
        if not np.isfinite(value) or value <= 0:
            raise CameraError(f"camera {name} must be a positive number, got {value!r}")
    for name, value in (("shift_x", shift_x), ("shift_y", shift_y)):
        if not np.isfinite(value):
            raise CameraError(f"camera {name} must be a finite number, got {value!r}")
    for name, value in (("resolution_x", resolution_x), ("resolution_y", resolution_y)):
        if (
            not isinstance(value, (int, np.integer, float, np.floating))
            or not np.isfinite(value)
            or value <= 0
            or value != int(value)
        ):
            raise CameraError(f"{name} must be a positive whole number of pixels, got {value!r}")

    world_to_camera = _BLENDER_TO_OPENCV @ _camera_to_world_inverse(matrix_world)

    # ycor: height of a pixel relative to its width, as in Blender.
    ycor = pixel_aspect_y / pixel_aspect_x
    sensor_size = sensor_height if sensor_fit == "VERTICAL" else sensor_width
    fit = sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if resolution_x * pixel_aspect_x >= resolution_y * pixel_aspect_y else "VERTICAL"
    # viewfac: the fitted side's length in x-pixel units; the sensor spans it.
    viewfac = resolution_x if fit == "HORIZONTAL" else ycor * resolution_y
    fx = lens * viewfac / sensor_size
    fy = fx / ycor
    cx = resolution_x / 2.0 - shift_x * viewfac
    cy = resolution_y / 2.0 + shift_y * viewfac / ycor
    intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return world_to_camera, intrinsics


def project(points: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points [N, 3] to pixels: returns (uv [N, 2] float64, depth z [N] float64).

    `depth` is the camera-space z (distance along the viewing axis, positive in front of the camera).
    Points at or behind the camera plane (z <= 0) get uv = NaN so a caller cannot draw them by
    accident; check `depth > 0` before using uv.
    """
    points = np.asarray(points, dtype=np.float64)
    world_to_camera = np.asarray(world_to_camera, dtype=np.float64)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    depth = camera[:, 2]
    pixels = camera @ intrinsics.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pixels[:, :2] / np.where(depth > 0, pixels[:, 2], np.nan)[:, None]
    return uv, depth


def _camera_to_world_inverse(matrix_world) -> np.ndarray:
    """Invert the camera's world matrix after dropping its scale, as Blender does for cameras."""
    matrix = np.array(matrix_world, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise CameraError(f"camera matrix_world must be a finite 4x4 matrix, got shape {list(matrix.shape)}")
    axes = matrix[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if (lengths < 1e-12).any():
        raise CameraError("camera matrix_world has a zero-length axis (scale 0); give the camera a non-zero scale")
    matrix[:3, :3] = axes / lengths
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        raise CameraError(
            "camera matrix_world is singular (its axes are parallel); reset the camera's rotation"
        ) from None
