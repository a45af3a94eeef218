"""Read the scene camera from bpy at the current frame: the numbers `das_core.tracking.camera` converts.

Only bpy reads live here; the conversion to OpenCV intrinsics and world_to_camera is pure numpy in
`das_core.tracking.camera.blender_camera_to_opencv`, tested without Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.tracking import camera as das_camera


@dataclass(frozen=True)
class RenderSize:
    """The rendered image size in pixels (resolution x percentage) and the pixel aspect."""

    width: int
    height: int
    pixel_aspect_x: float
    pixel_aspect_y: float


def gather_render_size(scene: bpy.types.Scene) -> RenderSize:
    """Resolution scaled by the render percentage, rounded down as Blender does."""
    render = scene.render
    return RenderSize(
        width=render.resolution_x * render.resolution_percentage // 100,
        height=render.resolution_y * render.resolution_percentage // 100,
        pixel_aspect_x=float(render.pixel_aspect_x),
        pixel_aspect_y=float(render.pixel_aspect_y),
    )


def resolve_camera(scene: bpy.types.Scene, camera: bpy.types.Object | None) -> bpy.types.Object:
    """The chosen camera or the scene camera; a clear error when there is none."""
    camera = camera or scene.camera
    if camera is None:
        raise DasError(f"scene {scene.name!r} has no camera; add one and set it as the scene camera (Scene properties)")
    if camera.type != "CAMERA":
        raise DasError(f"object {camera.name!r} is a {camera.type.lower()}, not a camera; choose a camera object")
    return camera


def gather_camera(
    camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph, size: RenderSize
) -> tuple[np.ndarray, np.ndarray]:
    """(world_to_camera [4,4], intrinsics [3,3]) of the camera as evaluated now (animation, constraints, parents)."""
    evaluated = camera.evaluated_get(depsgraph)
    data = evaluated.data
    return das_camera.blender_camera_to_opencv(
        np.array(evaluated.matrix_world, dtype=np.float64),
        lens=data.lens,
        sensor_width=data.sensor_width,
        sensor_height=data.sensor_height,
        sensor_fit=data.sensor_fit,
        shift_x=data.shift_x,
        shift_y=data.shift_y,
        resolution_x=size.width,
        resolution_y=size.height,
        pixel_aspect_x=size.pixel_aspect_x,
        pixel_aspect_y=size.pixel_aspect_y,
        camera_type=data.type,
    )
