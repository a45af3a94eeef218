"""Mesh mode's two encodings (ENCODING.md, "Mesh mode"): what each vertex carries into the
rasteriser, and how an interpolated fragment becomes the 8-bit colour of its pixel.

- "exact" (the default): each vertex carries its camera-space position at the first frame. The
  rasteriser interpolates it perspective-correctly, so each fragment holds the first-frame position
  of its own surface point, which `ExactShader` projects with the first frame's camera and encodes:
  R, G its position in the frame, B its normalised inverse distance, black where that point was
  outside the frame or at or behind the camera. Every pixel names its own first-frame position.
- "reference": each vertex carries its 8-bit colour (`colors.mesh_vertex_colors`) decoded to
  linear light; `ReferenceShader` encodes the interpolated colour back to sRGB, as the reference's
  Blender render does. A face with a vertex the camera did not see is shaded towards black all
  across, however much of it is in view.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from das_core.tracking.colors import (
    SRGB8_TABLE,
    SRGB8_TABLE_SIZE,
    inverse_range,
    mesh_vertex_colors,
    srgb8_to_linear,
)
from das_core.tracking.render.canvas import Canvas, project_in_blocks
from das_core.tracking.tracks import Tracks

ENCODINGS = ("exact", "reference")


class Shader(Protocol):
    """What mesh mode interpolates per vertex and how it colours a fragment."""

    attributes: np.ndarray  # float32 [N, 3] per vertex, interpolated perspective-correctly

    def encode(self, values: list[np.ndarray], depth: np.ndarray) -> list[np.ndarray]:
        """The 8-bit R, G, B (uint8, 3 x [hits]) of fragments with current-frame 1/z `depth`
        [hits] and attributes times that 1/z `values` (3 x [hits] float32, free to overwrite)."""
        ...


def shader_for(encoding: str, tracks: Tracks, canvas: Canvas) -> Shader:
    """The shader of `encoding` (one of `ENCODINGS`) for `tracks` drawn into `canvas`, coloured
    from the first frame."""
    points = tracks.points[0].astype(np.float64)
    # B's range: inverse Euclidean distances to the camera centre over all vertices, as the reference.
    distance = np.linalg.norm(points - _camera_centre(tracks.world_to_camera[0]), axis=1)
    if encoding == "reference":
        uv, depth = project_in_blocks(tracks.points[0], tracks.world_to_camera[0], canvas.intrinsics[0])
        colors = mesh_vertex_colors(
            canvas.to_canvas(uv), depth, distance, canvas.width, canvas.height, seen=canvas.seen
        )
        return ReferenceShader(srgb8_to_linear(colors))
    world_to_camera = tracks.world_to_camera[0].astype(np.float64)
    camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    return ExactShader(camera.astype(np.float32), canvas, inverse_range(np.maximum(distance, 1e-12)))


def _camera_centre(world_to_camera: np.ndarray) -> np.ndarray:
    """World position of the camera centre: -R^-1 t."""
    matrix = np.asarray(world_to_camera, dtype=np.float64)
    return -np.linalg.solve(matrix[:3, :3], matrix[:3, 3])


class ReferenceShader:
    """Per-vertex colours: linear light interpolated, encoded to 8-bit sRGB by table."""

    def __init__(self, linear_colors: np.ndarray) -> None:
        self.attributes = linear_colors

    def encode(self, values: list[np.ndarray], depth: np.ndarray) -> list[np.ndarray]:
        # Perspective-correct: colour times 1/z is affine; its ratio to 1/z is the colour.
        scale = SRGB8_TABLE_SIZE / depth
        levels = []
        for level in values:
            level *= scale
            np.minimum(level, SRGB8_TABLE_SIZE - 1, out=level)
            # Clipped: a hit just outside its triangle (within the edge slack) can extrapolate
            # below 0.
            levels.append(SRGB8_TABLE.take(level.astype(np.int32), mode="clip"))
        return levels


class ExactShader:
    """Per-pixel first-frame positions: each fragment's own camera-space position at the first
    frame, projected and encoded there (module docstring)."""

    def __init__(self, first_positions: np.ndarray, canvas: Canvas, blue_range: tuple[float, float]) -> None:
        """`first_positions` [N, 3] float32: the vertices in the first frame's camera space;
        `blue_range`: (lo, hi) of the inverse distances B spans (`colors.inverse_range`). The
        camera is rigid (OpenCV), so a camera-space length is the distance to its centre."""
        self.attributes = first_positions
        matrix = canvas.intrinsics[0].astype(np.float64)
        # Levels are 255 * (canvas position / canvas size): R = floor of the column level.
        column, row = 255.0 / canvas.width, 255.0 / canvas.height
        self.column = (matrix[0, 0] * column, matrix[0, 1] * column, (matrix[0, 2] + canvas.left) * column)
        self.row = (matrix[1, 1] * row, (matrix[1, 2] + canvas.top) * row)
        left, top, right, bottom = canvas.seen
        self.seen = (left * column, top * row, right * column, bottom * row)
        lo, hi = blue_range
        self.blue = (lo, 255.0 / (hi - lo) if hi > lo else 0.0)

    def encode(self, values: list[np.ndarray], depth: np.ndarray) -> list[np.ndarray]:
        x, y, z = values  # first-frame camera position, each times the current 1/z
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inverse_first_z = depth / z
            x /= z  # the first frame's normalised image coordinates
            y /= z
            column = x * self.column[0]
            column += y * self.column[1]
            column += self.column[2]
            row = y * self.row[0]
            row += self.row[1]
            # 1 / distance = (1 / z) / |(x / z, y / z, 1)|
            x *= x
            y *= y
            x += y
            x += 1
            np.sqrt(x, out=x)
            np.divide(inverse_first_z, x, out=x)
            x -= self.blue[0]
            x *= self.blue[1]
            np.clip(x, 0, 255, out=x)
            left, top, right, bottom = self.seen
            inside = z > 0
            inside &= column >= left
            inside &= column <= right
            inside &= row >= top
            inside &= row <= bottom
        # Inside, every level lies in [0, 255]: truncation is the encoding's round-down.
        return [np.where(inside, level, 0).astype(np.uint8) for level in (column, row, x)]
