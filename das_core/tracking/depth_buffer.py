"""A z-buffer of a triangle mesh: for each pixel, the nearest triangle, its depth and where on it.

`rasterise_depth` casts the ray through each pixel centre that a triangle's projected bounding box
covers and intersects it with the triangle in camera space (Moller-Trumbore, with the ray's origin
at the camera centre). Intersecting in 3D gives perspective-correct depth and barycentric
coordinates directly, and a triangle crossing the camera plane needs no clipping: only its
bounding box is taken from the part in front of `NEAR_PLANE`. The nearest hit per pixel wins.

Numpy only (it runs inside Blender); triangles are processed in vectorised batches of candidate
pixels. The tracking-video renderer has its own, faster colour rasteriser; this one serves
visibility tests (`das_core.tracking.point_tracks`), which need the triangle and barycentric
coordinates under a pixel rather than a colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from das_core.tracking.render import NEAR_PLANE

__all__ = ["DepthBuffer", "rasterise_depth"]

# Candidate pixels tested at once: a dozen float64 temporaries of 8 MB each.
_BATCH_CANDIDATES = 1 << 20
# Slack of the inside test in barycentric units, so a pixel centre on an edge shared by two
# triangles is covered despite rounding (no pinholes in the buffer).
_EDGE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class DepthBuffer:
    """The nearest surface per pixel of a `width` x `height` image.

    `depth` [H, W] float64 is camera-space z (inf where no triangle is drawn); `triangle` [H, W]
    int64 the index into `faces` of the nearest triangle (-1 where none); `barycentric` [H, W, 3]
    float64 where the pixel centre's ray meets that triangle, weights of its three vertices.
    """

    depth: np.ndarray
    triangle: np.ndarray
    barycentric: np.ndarray


def rasterise_depth(
    camera_points: np.ndarray,
    faces: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    *,
    pixels: np.ndarray | None = None,
    drawn: np.ndarray | None = None,
) -> DepthBuffer:
    """Z-buffer the triangles `faces` [F, 3] of vertices `camera_points` [N, 3] (camera space, OpenCV).

    `intrinsics` [3, 3] map camera space to the pixels of the `width` x `height` image; pixel (i, j)
    is tested at its centre (i + 0.5, j + 0.5). `pixels` [H, W] bool limits the work to the pixels
    that are True (the rest stay empty): visibility tests ask about a few scattered pixels, and a
    triangle whose bounds hold none of them costs no more than its bounds. `drawn` [F] bool leaves
    out the triangles that are False (objects not rendered in this frame).
    """
    points = np.asarray(camera_points, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    depth = np.full(height * width, np.inf)
    triangle = np.full(height * width, -1, dtype=np.int64)
    barycentric = np.zeros((height * width, 3))

    front = points[:, 2] > NEAR_PLANE
    keep = front[faces[:, 0]] | front[faces[:, 1]] | front[faces[:, 2]]
    if drawn is not None:
        keep &= drawn
    ids = np.flatnonzero(keep)
    x0, x1, y0, y1 = _pixel_bounds(points, faces[ids], intrinsics, width, height)
    filled = (x1 >= x0) & (y1 >= y0)
    ids, x0, x1, y0, y1 = ids[filled], x0[filled], x1[filled], y0[filled], y1[filled]
    if pixels is not None:
        wanted = _count_in_boxes(pixels, x0, x1, y0, y1) > 0
        ids, x0, x1, y0, y1 = ids[wanted], x0[wanted], x1[wanted], y0[wanted], y1[wanted]
    coefficients = _ray_coefficients(points[faces[ids]], intrinsics)

    columns = x1 - x0 + 1
    counts = columns * (y1 - y0 + 1)
    ends = np.cumsum(counts)
    first = 0
    while first < len(ids):
        # Triangles up to the one whose candidates pass the batch size (at least one triangle).
        done = ends[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(ends, done + _BATCH_CANDIDATES, side="right")))
        batch = slice(first, last)
        owner = np.repeat(np.arange(first, last), counts[batch])
        offset = np.arange(len(owner)) - np.repeat(ends[batch] - counts[batch] - done, counts[batch])
        column = x0[owner] + offset % columns[owner]
        row = y0[owner] + offset // columns[owner]
        if pixels is not None:
            asked = pixels[row, column]
            owner, column, row = owner[asked], column[asked], row[asked]
        hit, z, weights = _intersect(coefficients, owner, column + 0.5, row + 0.5)
        _keep_nearest(depth, triangle, barycentric, (row * width + column)[hit], z[hit], ids[owner][hit], weights[hit])
        first = last

    return DepthBuffer(
        depth.reshape(height, width), triangle.reshape(height, width), barycentric.reshape(height, width, 3)
    )


def _count_in_boxes(pixels: np.ndarray, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """How many True pixels each inclusive box [y0..y1] x [x0..x1] holds, from a summed-area table."""
    table = np.zeros((pixels.shape[0] + 1, pixels.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = pixels.cumsum(axis=0).cumsum(axis=1)
    return table[y1 + 1, x1 + 1] - table[y0, x1 + 1] - table[y1 + 1, x0] + table[y0, x0]


def _pixel_bounds(
    points: np.ndarray, faces: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inclusive pixel ranges (x0, x1, y0, y1) whose centres the triangles `faces` may cover.

    The bounds are those of the triangle's part in front of `NEAR_PLANE`, whose projection its
    projected corners bound. For a triangle crossing that plane the part is a polygon: its corners
    in front plus the points where its edges cross the plane. Ranges are clipped to the image; an
    empty range has x1 < x0 or y1 < y0.
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    front = points[:, 2] > NEAR_PLANE
    whole = front[faces[:, 0]] & front[faces[:, 1]] & front[faces[:, 2]]
    pixels = points @ intrinsics.T  # vertices projected once; behind the camera they mean nothing
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = pixels[:, :2] / pixels[:, 2:]
    a, b, c = (xy[faces[whole, k]] for k in range(3))
    low = np.empty((len(faces), 2))
    high = np.empty((len(faces), 2))
    low[whole], high[whole] = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    low[~whole], high[~whole] = _clipped_bounds(points[faces[~whole]], intrinsics)

    # Pixel i's centre is i + 0.5: the range is ceil(low - 0.5) .. floor(high - 0.5), within the image.
    x0 = np.ceil(np.clip(low[:, 0], -1, width) - 0.5).astype(np.int64)
    x1 = np.floor(np.clip(high[:, 0], -1, width) - 0.5).astype(np.int64)
    y0 = np.ceil(np.clip(low[:, 1], -1, height) - 0.5).astype(np.int64)
    y1 = np.floor(np.clip(high[:, 1], -1, height) - 0.5).astype(np.int64)
    return np.maximum(x0, 0), np.minimum(x1, width - 1), np.maximum(y0, 0), np.minimum(y1, height - 1)


def _clipped_bounds(corners: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel bounds (low [C, 2], high [C, 2]) of the parts of triangles [C, 3, 3] in front of
    `NEAR_PLANE`, each with at least one corner there."""
    start, end = corners, np.roll(corners, -1, axis=1)  # the three edges
    za, zb = start[..., 2], end[..., 2]
    crossing = (za > NEAR_PLANE) != (zb > NEAR_PLANE)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crossing, (NEAR_PLANE - za) / (zb - za), 0.0)
    cut = start + t[..., None] * (end - start)
    cut[..., 2] = NEAR_PLANE
    outline = np.concatenate([corners, cut], axis=1)  # [C, 6, 3]
    valid = np.concatenate([za > NEAR_PLANE, crossing], axis=1)[..., None]
    pixels = outline @ intrinsics.T
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = pixels[..., :2] / pixels[..., 2:]
    return np.where(valid, xy, np.inf).min(axis=1), np.where(valid, xy, -np.inf).max(axis=1)


def _ray_coefficients(corners: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Per triangle [F, 3, 3], what Moller-Trumbore needs as functions of the pixel (u, v): [F, 13].

    The ray through pixel (u, v) has direction d = K^-1 (u, v, 1). With the ray starting at the
    camera centre, the determinant and both barycentric numerators are dot products of d with a
    per-triangle vector w, so each is affine in (u, v): (w K^-1) . (u, v, 1). Columns: the three
    affine rows (determinant, weight of corner 1, weight of corner 2), the hit distance's
    numerator, and the depth row (z of d, 1 for an ordinary K).
    """
    inverse = np.linalg.inv(np.asarray(intrinsics, dtype=np.float64))
    v0, v1, v2 = corners[:, 0], corners[:, 1], corners[:, 2]
    e1, e2, to_origin = v1 - v0, v2 - v0, -v0
    q = np.cross(to_origin, e1)
    determinant = np.cross(e2, e1) @ inverse
    weight1 = np.cross(e2, to_origin) @ inverse
    weight2 = q @ inverse
    distance = np.einsum("fi,fi->f", e2, q)[:, None]
    depth_row = np.broadcast_to(inverse[2], (len(corners), 3))
    return np.concatenate([determinant, weight1, weight2, distance, depth_row], axis=1)


def _intersect(
    coefficients: np.ndarray, owner: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays through pixel positions (u, v) against triangles `owner` (rows of `_ray_coefficients`):
    (hit mask, camera-space z, barycentric weights [n, 3])."""

    def affine(k: int) -> np.ndarray:  # gathered a column at a time: no [n, 13] temporary
        return coefficients[owner, k] * u + coefficients[owner, k + 1] * v + coefficients[owner, k + 2]

    determinant = affine(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b1 = affine(3) / determinant
        b2 = affine(6) / determinant
        z = coefficients[owner, 9] / determinant * affine(10)
        b0 = 1.0 - b1 - b2
    # NaN (an edge-on triangle, determinant 0) fails every comparison, so it is never a hit.
    hit = (b0 >= -_EDGE_TOLERANCE) & (b1 >= -_EDGE_TOLERANCE) & (b2 >= -_EDGE_TOLERANCE) & (z > NEAR_PLANE)
    return hit, z, np.stack([b0, b1, b2], axis=1)


def _keep_nearest(
    depth: np.ndarray,
    triangle: np.ndarray,
    barycentric: np.ndarray,
    pixel: np.ndarray,
    z: np.ndarray,
    ids: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Depth test of hits (flat pixel index, z, triangle id, weights) against the flat buffers."""
    np.minimum.at(depth, pixel, z)
    nearest = np.flatnonzero(z == depth[pixel])
    # One winner per pixel (ties: the first), so triangle and weights come from the same hit.
    _, unique = np.unique(pixel[nearest], return_index=True)
    nearest = nearest[unique]
    triangle[pixel[nearest]] = ids[nearest]
    barycentric[pixel[nearest]] = weights[nearest]
