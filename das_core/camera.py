"""Camera conventions: Blender camera numbers to pinhole intrinsics and an OpenCV world_to_camera.

The whole project uses the OpenCV camera convention (x right, y down, z forward; pixel (0, 0) is the
top-left corner of the top-left pixel, so its centre is (0.5, 0.5)). Blender cameras look down their
local -Z axis with +Y up; this module is the one place that converts. Pure numpy: the add-on reads
the numbers from bpy and hands them over, so the conversion is tested without Blender too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["project"]


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
