"""The nearest surface under each pixel and its per-vertex attributes there: the mesh renderer's
depth test with float attributes instead of colours.

`nearest_surfaces` draws the mesh's triangles with `raster.draw` keyed by triangle (no shader),
so the depth test, near-plane clipping and coverage rules are the tracking video's. Every
attribute times 1/z is affine on screen, so for each triangle that won a pixel, it and 1/z are
fitted as planes from its corners; an attribute at a pixel is the ratio of its plane to 1/z's
there (perspective-correct, as `shading` does for colours). The caller evaluates the planes
where and how it needs them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from das_core.tracking.render import raster
from das_core.tracking.render.mesh import set_up_triangles
from das_core.tracking.render.triangles import Triangles

_TRIANGLE_BITS = 0xFFFFFFFF  # the low 32 bits of a key drawn without a shader: triangle + 1
_HIGH_HALF = 1 if sys.byteorder == "little" else 0  # where a key's high 32 bits (1/z) lie
# One frame of a small mesh makes many small window batches: joining them pays while it adds
# fewer candidate pixels than this (a batch's numpy calls cost about as much as ~8 k pixels).
_BATCH_COST = 8000


@dataclass(frozen=True)
class Surfaces:
    """What a camera sees of a mesh, per pixel of a `width` x `height` image (row-major, flat).

    `inverse_z` float32 [H * W]: 1/z of the nearest surface, 0 where nothing is drawn.
    `owner` int64 [H * W]: the row of `planes` of each pixel's surface, 0 where nothing is drawn.
    `planes` float64 [S, k + 1, 3]: per surface (a triangle that won a pixel; row 0, zeros: none),
    1/z and each of the k attributes times 1/z as affine functions of the pixel: (value at the
    centre of pixel (0, 0), step per column, step per row). Attribute j at a pixel is plane j + 1
    over plane 0 there.
    """

    inverse_z: np.ndarray
    owner: np.ndarray
    planes: np.ndarray


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
    renderer's depth test, and fit the per-vertex `attributes` [N, k] (k >= 0) over the nearest
    surface under every pixel (`Surfaces`). Attributes that are linear over each triangle in 3D
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
    if triangles is None:
        return Surfaces(np.zeros(width * height, dtype=np.float32), nearest, np.zeros((1, attributes.shape[1] + 1, 3)))
    raster.draw(triangles, nearest, None, _BATCH_COST)
    inverse_z = nearest.view(np.float32)[_HIGH_HALF::2].copy()
    label = nearest & _TRIANGLE_BITS
    # Fit only the triangles that won a pixel: mark them, number them densely from 1.
    won = np.zeros(len(triangles.frame) + 1, dtype=bool)
    won[label] = True
    won[0] = False
    owner = np.cumsum(won).take(label)
    return Surfaces(inverse_z, owner, _screen_planes(triangles, np.flatnonzero(won) - 1, attributes))


def _screen_planes(triangles: Triangles, subset: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """`Surfaces.planes` of the triangles `subset`: float64 [len(subset) + 1, k + 1, 3], row 0 zeros."""
    corners = [c.take(subset) for c in triangles.corners]
    x = [triangles.x.take(c).astype(np.float64) for c in corners]
    y = [triangles.y.take(c).astype(np.float64) for c in corners]
    inverse_z = [triangles.affine[0].take(c).astype(np.float64) for c in corners]
    q = [np.concatenate([z[:, None], attributes[c] * z[:, None]], axis=1) for c, z in zip(corners, inverse_z)]
    dx1, dy1, dx2, dy2 = x[1] - x[0], y[1] - y[0], x[2] - x[0], y[2] - y[0]
    area = (dx1 * dy2 - dx2 * dy1)[:, None]
    dq1, dq2 = q[1] - q[0], q[2] - q[0]
    planes = np.zeros((len(subset) + 1, q[0].shape[1], 3))
    step_x, step_y = planes[1:, :, 1], planes[1:, :, 2]
    step_x[:] = (dq1 * dy2[:, None] - dq2 * dy1[:, None]) / area
    step_y[:] = (dq2 * dx1[:, None] - dq1 * dx2[:, None]) / area
    # The value at the centre of pixel (0, 0), (0.5, 0.5).
    planes[1:, :, 0] = q[0] - step_x * (x[0] - 0.5)[:, None] - step_y * (y[0] - 0.5)[:, None]
    return planes
