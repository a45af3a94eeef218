"""The nearest surface under each pixel and its per-vertex attributes there: the mesh renderer's
depth test with float attributes instead of colours.

`nearest_surfaces` draws the mesh's triangles with `raster.draw` keyed by triangle (no shader),
so the depth test, near-plane clipping and coverage rules are the tracking video's. Each pixel's
attributes are then read from its winning triangle: every attribute times 1/z is affine on
screen, so it and 1/z are fitted per triangle from its corners, evaluated at the pixel centre
and divided (perspective-correct, as `shading` does for colours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from das_core.tracking.render import raster
from das_core.tracking.render.mesh import set_up_triangles
from das_core.tracking.render.triangles import Triangles

_TRIANGLE_BITS = 0xFFFFFFFF  # the low 32 bits of a key drawn without a shader


@dataclass(frozen=True)
class Surfaces:
    """What a camera sees of a mesh, per pixel of a `width` x `height` image (row-major, flat).

    `inverse_z` float32 [H * W]: 1/z of the nearest surface, 0 where nothing is drawn.
    `covered` int64 [P]: the flat indices of the drawn pixels.
    `values` float32 [P, k]: the attributes interpolated at their centres, perspective-correct.
    """

    inverse_z: np.ndarray
    covered: np.ndarray
    values: np.ndarray


def nearest_surfaces(
    points: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    faces: np.ndarray,
    width: int,
    height: int,
    attributes: np.ndarray,
) -> Surfaces:
    """Draw the triangles `faces` [F, 3] of world points [N, 3] seen by a camera (`world_to_camera`
    [4, 4] OpenCV, `intrinsics` [3, 3] in pixels of the `width` x `height` image) with the
    renderer's depth test, and interpolate the per-vertex `attributes` [N, k] (k >= 0) across the
    nearest surface under every pixel centre. Attributes that are linear over each triangle in 3D
    (a vertex's position elsewhere, say) come out exact."""
    attributes = np.asarray(attributes, dtype=np.float32).reshape(len(points), -1)
    triangles, attributes = set_up_triangles(
        np.asarray(points, dtype=np.float32)[None],
        np.asarray(world_to_camera, dtype=np.float32)[None],
        np.asarray(intrinsics, dtype=np.float32)[None],
        faces,
        attributes,
        width,
        height,
    )
    nearest = np.zeros(width * height, dtype=np.int64)
    if triangles is not None:
        raster.draw(triangles, nearest, None)
    inverse_z = (nearest >> 32).astype(np.int32).view(np.float32)
    covered = np.flatnonzero(nearest)
    if triangles is None or not len(covered):
        return Surfaces(inverse_z, covered, np.zeros((len(covered), attributes.shape[1])))
    triangle = nearest.take(covered) & _TRIANGLE_BITS
    # Fit only the triangles that won a pixel: mark them, number them densely.
    won = np.zeros(len(triangles.frame), dtype=bool)
    won[triangle] = True
    winners = np.flatnonzero(won)
    slot = np.cumsum(won) - 1
    # Each quantity relative to the pixel (0, 0), evaluated in float32 with 1-D gathers (fast).
    planes = _screen_planes(triangles, winners, attributes).astype(np.float32)  # [winners, 3, k + 1]
    owner = slot.take(triangle)
    pixel_row = covered // width
    column = (covered - pixel_row * width).astype(np.float32)
    column += 0.5
    row = pixel_row.astype(np.float32)
    row += 0.5
    values = np.empty((planes.shape[2], len(covered)), dtype=np.float32)
    for k, (origin, step_x, step_y) in enumerate(planes.transpose(2, 1, 0)):
        np.multiply(step_x.take(owner), column, out=values[k])
        values[k] += origin.take(owner)
        values[k] += step_y.take(owner) * row
    values[1:] /= values[0]
    return Surfaces(inverse_z, covered, values[1:].T)


def _screen_planes(triangles: Triangles, subset: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Per triangle of `subset`, 1/z and each attribute times 1/z as affine functions of the pixel
    position: float64 [len(subset), 3, k + 1], rows (value at (0, 0), step in x, step in y)."""
    corners = [c.take(subset) for c in triangles.corners]
    x = [triangles.x.take(c).astype(np.float64) for c in corners]
    y = [triangles.y.take(c).astype(np.float64) for c in corners]
    inverse_z = [triangles.affine[0].take(c).astype(np.float64) for c in corners]
    q = [np.concatenate([z[:, None], attributes[c] * z[:, None]], axis=1) for c, z in zip(corners, inverse_z)]
    dx1, dy1, dx2, dy2 = x[1] - x[0], y[1] - y[0], x[2] - x[0], y[2] - y[0]
    area = (dx1 * dy2 - dx2 * dy1)[:, None]
    dq1, dq2 = q[1] - q[0], q[2] - q[0]
    step_x = (dq1 * dy2[:, None] - dq2 * dy1[:, None]) / area
    step_y = (dq2 * dx1[:, None] - dq1 * dx2[:, None]) / area
    origin = q[0] - step_x * x[0][:, None] - step_y * y[0][:, None]
    return np.stack([origin, step_x, step_y], axis=1)
