"""Triangle set-up for the mesh rasteriser: screen-space boxes, and the rows of numbers the inside
test and the shading read per triangle.

Barycentrics b0, b1, 1/z and each shading attribute times 1/z (a vertex's linear colour channel
or first-frame coordinate, `shading`) are affine in screen space, so each is kept as its value at
the centre of the box's first pixel and its steps per pixel in x and in y. A pixel centre belongs
to a triangle when b0, b1 >= 0 and b0 + b1 <= 1, whichever way the triangle winds (no culling);
an attribute there is (attribute times 1/z) / (1/z), perspective-correct. A
triangle reaching past `_GUARD_BAND` is instead tested by its three signed edge distances in
pixels, set up in float64 (`_far_rows`).

A triangle's set-up is a column of `SET_UP_ROWS` float32 rows. Each named slice below is three
rows holding one affine quantity as (value at the first pixel centre, step in x, step in y),
except `SLACK`. The inside test reads the first nine rows, in one of two forms:
- near triangles: `SLACK` (the limits of b0, of b1 and of b0 + b1: `EDGE_TOLERANCE` pixels past
  each edge, in barycentric units), then the barycentrics `B0` and `B1`;
- far triangles: `EDGES`, each edge's signed distance in pixels, positive inside (its steps are
  the edge's inward unit normal).
The shading reads `SHADING`: 1/z, then each attribute times 1/z (`CHANNELS`).
"""

from __future__ import annotations

import numpy as np

SET_UP_ROWS = 21
SLACK = slice(0, 3)
B0, B1 = slice(3, 6), slice(6, 9)
EDGES = (slice(0, 3), slice(3, 6), slice(6, 9))
INVERSE_Z = slice(9, 12)
CHANNELS = (slice(12, 15), slice(15, 18), slice(18, 21))
SHADING = (INVERSE_Z, *CHANNELS)

# Slack of the inside test in pixels, so a pixel centre exactly on an edge or vertex (a mesh's
# outline, say) is covered despite float rounding.
EDGE_TOLERANCE = 1e-3
# Triangles with a vertex farther than this many pixels outside the image (a close-up plane, the
# parts of a triangle clipped at the near plane: up to millions of pixels away) are tested with
# float64-set-up edge distances: float32 barycentrics lose ~1e-7 of the triangle's size, more
# than the edge slack, and neighbours would disagree about their shared edge (pinholes).
_GUARD_BAND = 1024


def past_guard_band(x: np.ndarray, y: np.ndarray, width: int, height: int) -> bool:
    """Whether a pixel position (`x`, `y`) lies farther than `_GUARD_BAND` pixels outside the
    `width` x `height` image (then `Triangles` needs float64 positions)."""
    return bool(
        x.min() < -_GUARD_BAND
        or x.max() > width + _GUARD_BAND
        or y.min() < -_GUARD_BAND
        or y.max() > height + _GUARD_BAND
    )


class Triangles:
    """Screen-space triangles of a chunk of frames, culled and set up for rasterising (the rows the
    inside test and the shading read come from `set_up`, only for the triangles that get
    rasterised: most hidden back faces never need them).

    Per triangle: `frame`; `place` [3, F] int32, the rows `i0` (first pixel column of its box),
    `j0` (first pixel row) and its frame; `columns` and `rows`, the box's size in pixels; `area`
    (twice the signed area, NaN when degenerate), `facing` (area > 0: one winding; which one faces
    the camera depends on the mesh), `z2` (1/z at its third corner), `nearest_depth` (its
    largest 1/z); and `far`, whether it reaches past the guard band (None when no vertex does).
    """

    far: np.ndarray | None
    far_slot: np.ndarray  # each far triangle's column in `far_rows`
    far_rows: np.ndarray  # float32 [SET_UP_ROWS, far triangles]

    def __init__(
        self,
        corners: list[np.ndarray],
        frame: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        inverse_z: np.ndarray,
        precise: np.ndarray | None,
        attributes: np.ndarray,
        width: int,
        height: int,
    ) -> None:
        """Triangles with vertex indices `corners` (3 x [F]) at `frame` [F], of vertices at pixels
        (`x`, `y`) [V] with 1/z `inverse_z` [V] and shading attributes `attributes` [V, 3]. `precise` holds
        float64 pixel positions [V, 2] when a vertex may lie past the guard band (None when none
        does)."""
        self.width, self.height = width, height
        # Gathers use `take` throughout: faster than fancy indexing.
        x0, x1, x2 = (x.take(c) for c in corners)
        y0, y1, y2 = (y.take(c) for c in corners)
        # Pixel columns/rows whose centres (i + 0.5) lie inside the bounding box, clamped to the
        # image; triangles between pixel centres or off-screen have none and are dropped.
        # The box is widened by a thousandth of a pixel so that a vertex on a pixel centre, give
        # or take float rounding, still gets its pixel tested.
        # (In place, here and below: every fresh temporary of a chunk's size is memory the
        # allocator hands back to the kernel between chunks and takes page faults to get again.)
        i0, i1 = _pixel_span(x0, x1, x2, width)
        j0, j1 = _pixel_span(y0, y1, y2, height)
        area = y1 - y2
        area *= x0 - x2
        cross = x2 - x1
        cross *= y0 - y2
        area += cross
        empty = (i1 < i0) | (j1 < j0) | (area == 0)
        corners = list(corners)
        if empty.sum() > len(empty) / 4:  # worth compacting; otherwise empty ones fail every test
            keep = np.flatnonzero(~empty)
            x0, x1, x2, y0, y1, y2, area, i0, i1, j0, j1, frame = (
                v[keep] for v in (x0, x1, x2, y0, y1, y2, area, i0, i1, j0, j1, frame)
            )
            corners = [c[keep] for c in corners]
        else:
            # A degenerate triangle gets NaN coefficients (every comparison false) and an
            # off-screen one a one-pixel window whose centre lies outside it.
            area[area == 0] = np.nan
            i0, j0 = np.minimum(i0, width - 1), np.minimum(j0, height - 1)
            i1, j1 = np.maximum(i1, i0), np.maximum(j1, j0)
        self.frame = frame
        # Pixel positions and sizes as int32 (an image's side is far below 2**31): half the
        # memory traffic of int64 in every gather.
        self.place = np.empty((3, len(frame)), dtype=np.int32)
        self.i0, self.j0, _ = self.place
        self.place[0], self.place[1], self.place[2] = i0, j0, frame
        self.columns, self.rows = (_pixel_count(first, last) for first, last in ((i0, i1), (j0, j1)))
        z0, z1, z2 = (inverse_z.take(c) for c in corners)
        self.z2 = z2
        self.area = area
        self.facing = area > 0
        self.nearest_depth = np.maximum(z0, z1)  # 1/z is largest at a corner
        np.maximum(self.nearest_depth, z2, out=self.nearest_depth)
        # The per-vertex values `set_up` reads: 1/z and each attribute times 1/z are
        # affine on screen.
        self.corners, self.x, self.y = corners, x, y
        self.affine = np.empty((4, len(inverse_z)), dtype=np.float32)
        self.affine[0] = inverse_z
        np.multiply(attributes.T, inverse_z, out=self.affine[1:])  # (a product would be F-ordered)
        self.far = None
        if precise is not None:
            self._set_up_far((x0, x1, x2), (y0, y1, y2), precise, inverse_z, attributes)

    def _set_up_far(
        self,
        xs: tuple[np.ndarray, np.ndarray, np.ndarray],
        ys: tuple[np.ndarray, np.ndarray, np.ndarray],
        precise: np.ndarray,
        inverse_z: np.ndarray,
        attributes: np.ndarray,
    ) -> None:
        """Find the triangles reaching past the guard band, their corners at pixels (`xs`, `ys`),
        and set up their rows from the float64 vertex positions `precise` [V, 2]."""
        (x0, x1, x2), (y0, y1, y2) = xs, ys
        self.far = (
            (np.minimum(np.minimum(x0, x1), x2) < -_GUARD_BAND)
            | (np.maximum(np.maximum(x0, x1), x2) > self.width + _GUARD_BAND)
            | (np.minimum(np.minimum(y0, y1), y2) < -_GUARD_BAND)
            | (np.maximum(np.maximum(y0, y1), y2) > self.height + _GUARD_BAND)
        )
        ids = np.flatnonzero(self.far)
        self.far_slot = np.zeros(len(self.far), dtype=np.intp)
        self.far_slot[ids] = np.arange(len(ids))
        far_corners = [c[ids] for c in self.corners]
        self.far_rows = _far_rows(
            [precise[c] for c in far_corners],
            [inverse_z[c] for c in far_corners],
            [attributes[c] for c in far_corners],
            self.i0[ids],
            self.j0[ids],
        )

    def set_up(self, subset: np.ndarray, far: bool) -> np.ndarray:
        """The set-up rows, float32 [SET_UP_ROWS, len(subset)], of the triangles `subset`: all near
        (barycentric test) or all `far` (edge-distance test)."""
        if far:
            return self.far_rows.take(self.far_slot[subset], axis=1)
        return self._near_rows(subset)

    def _near_rows(self, subset: np.ndarray) -> np.ndarray:
        """The rows of near triangles `subset`: `SLACK`, `B0`, `B1` and `SHADING`."""
        rows = np.empty((SET_UP_ROWS, len(subset)), dtype=np.float32)
        slack = rows[SLACK]
        value0, step_x0, step_y0 = rows[B0]
        value1, step_x1, step_y1 = rows[B1]
        corners = [c.take(subset) for c in self.corners]
        x0, x1, x2 = (self.x.take(c) for c in corners)
        y0, y1, y2 = (self.y.take(c) for c in corners)
        area = self.area.take(subset)
        np.divide(y1 - y2, area, out=step_x0)
        np.divide(x2 - x1, area, out=step_y0)
        np.divide(y2 - y0, area, out=step_x1)
        np.divide(x0 - x2, area, out=step_y1)
        np.multiply(_length(step_x0, step_y0), -EDGE_TOLERANCE, out=slack[0])
        np.multiply(_length(step_x1, step_y1), -EDGE_TOLERANCE, out=slack[1])
        np.multiply(_length(step_x0 + step_x1, step_y0 + step_y1), EDGE_TOLERANCE, out=slack[2])
        slack[2] += 1
        # From the third corner to the centre of the box's first pixel.
        fx = self.i0.take(subset).astype(np.float32)
        fx += 0.5
        fx -= x2
        fy = self.j0.take(subset).astype(np.float32)
        fy += 0.5
        fy -= y2
        np.add(step_x0 * fx, step_y0 * fy, out=value0)
        np.add(step_x1 * fx, step_y1 * fy, out=value1)
        for values, quantity in zip(self.affine, SHADING):
            v0, v1, v2 = (values.take(c) for c in corners)
            v0 -= v2
            v1 -= v2
            value, step_x, step_y = rows[quantity]
            np.add(v0 * step_x0, v1 * step_x1, out=step_x)
            np.add(v0 * step_y0, v1 * step_y1, out=step_y)
            np.add(v2, step_x * fx, out=value)
            value += step_y * fy
        return rows


def _pixel_span(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last pixel (float) whose centre, i + 0.5, lies within the least and greatest of
    the three coordinates widened by a thousandth of a pixel, clamped to 0 .. size - 1."""
    first = np.minimum(v0, v1)
    np.minimum(first, v2, out=first)
    first -= 0.501
    np.ceil(first, out=first)
    np.maximum(first, 0, out=first)
    last = np.maximum(v0, v1)
    np.maximum(last, v2, out=last)
    last -= 0.499
    np.floor(last, out=last)
    np.minimum(last, size - 1, out=last)
    return first, last


def _pixel_count(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """last - first + 1, at least 1, as int32 (`last` is overwritten)."""
    last -= first
    last += 1
    np.maximum(last, 1, out=last)
    return last.astype(np.int32)


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.hypot(a, b)`, faster where the squares do not overflow float32 (a sliver triangle's
    gradients can be huge)."""
    length = a * a
    length += b * b
    if np.isinf(length).any():  # NaN (a degenerate triangle) stays NaN either way
        return np.hypot(a, b)
    return np.sqrt(length, out=length)


def _far_rows(
    corners: list[np.ndarray], inverse_z: list[np.ndarray], attributes: list[np.ndarray], i0: np.ndarray, j0: np.ndarray
) -> np.ndarray:
    """The set-up rows, float32 [SET_UP_ROWS, F], of triangles reaching past the guard band:
    `EDGES` and `SHADING`.

    `corners` are their float64 pixel positions (3 x [F, 2]), `inverse_z` 1/z at each corner
    (3 x [F]), `attributes` the shading attributes there (3 x [F, 3]), (`i0`, `j0`) [F] the first pixels
    of their boxes. Edge k lies opposite corner k. All are evaluated in float64 near the pixels
    they are used at, so float32 steps of a few hundred pixels from there stay accurate to ~1e-5
    pixels: a pixel centre on an edge shared by two triangles is within `EDGE_TOLERANCE` of both,
    however far their corners lie. Degenerate triangles get NaN rows (every test false).
    """
    centre = np.stack([i0 + 0.5, j0 + 0.5], axis=1)
    (x0, y0), (x1, y1), (x2, y2) = (c.T for c in corners)
    area = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    rows: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        sign = np.where(area != 0, np.sign(area), np.nan)
        for k in range(3):
            start, end = corners[(k + 1) % 3], corners[(k + 2) % 3]
            direction = end - start
            scale = sign / np.hypot(direction[:, 0], direction[:, 1])
            normal = np.stack([-direction[:, 1] * scale, direction[:, 0] * scale])
            rows += [np.einsum("ij,ji->i", centre - start, normal), normal[0], normal[1]]
        # Steps of the affine values from those of the barycentrics (b0 and b1, in x and in y).
        step_x0, step_y0 = (y1 - y2) / area, (x2 - x1) / area
        step_x1, step_y1 = (y2 - y0) / area, (x0 - x2) / area
    z0, z1, z2 = (z.astype(np.float64) for z in inverse_z)
    fx, fy = centre[:, 0] - x2, centre[:, 1] - y2
    for channel in (None, 0, 1, 2):
        v0, v1, v2 = (z0, z1, z2) if channel is None else (c[:, channel] * z for c, z in zip(attributes, (z0, z1, z2)))
        step_x = (v0 - v2) * step_x0 + (v1 - v2) * step_x1
        step_y = (v0 - v2) * step_y0 + (v1 - v2) * step_y1
        rows += [v2 + step_x * fx + step_y * fy, step_x, step_y]
    return np.stack(rows).astype(np.float32)
