"""Mesh rasterisation: set-up triangles (`triangles.Triangles`) into a depth buffer of int64 keys.

Every candidate pixel of a batch of same-sized windows is tested and shaded at once, and depth is
resolved by a scatter-max of keys: 1/z's float bits above (positive, so they order like the
numbers), the fragment's 8-bit colour (`shading`) in the lowest bytes, so the nearest fragment's colour
is left in each pixel.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from das_core.tracking.render.shading import Shader
from das_core.tracking.render.triangles import B0, B1, CHANNELS, EDGE_TOLERANCE, EDGES, INVERSE_Z, SLACK, Triangles
from das_core.tracking.render.windows import window_batches

# Where a depth-test key (int64) keeps its pixel's red, green and blue bytes: its lowest three.
_COLOUR_BYTES = (0, 1, 2) if sys.byteorder == "little" else (7, 6, 5)


def draw(triangles: Triangles, nearest: np.ndarray, shader: Shader | None, batch_cost: int = 0) -> None:
    """Scatter every fragment's key into `nearest` by max: its 1/z's float bits in the high
    32 bits, its 8-bit colour by `shader` in the `_COLOUR_BYTES` (so the nearest fragment's
    colour is the pixel's; equally near ones, on a shared edge, the brightest). Without a
    shader the low 32 bits hold the fragment's triangle: its index in `triangles` plus one,
    so that they alone tell an empty pixel (0).

    `nearest` has one int64 per pixel of the chunk: frame * H * W + row * W + column; 0 is
    an empty pixel.
    Triangles of the winding that is nearer on average (the front faces of a closed mesh) go
    first; then each other triangle is skipped when the surfaces already drawn cover its
    whole box and are all nearer than its nearest corner (it could not win a pixel), which
    spares most hidden back faces without culling any that could show: first by 8 x 8 tiles
    (`_hidden`, cheap), then pixel by pixel (`_showing`).

    `batch_cost` is passed to `windows.window_batches` for the triangles drawn (0: batches by
    size alone).
    """
    facing = triangles.facing
    count = facing.sum()
    if 0 < count < len(facing) and triangles.z2[facing].mean() < triangles.z2[~facing].mean():
        facing = ~facing
    _scatter(triangles, nearest, np.flatnonzero(facing), shader, batch_cost)
    rest = np.flatnonzero(~facing)
    if len(rest):
        rest = rest[~_hidden(triangles, nearest, rest)]
        _scatter(triangles, nearest, rest[_showing(triangles, nearest, rest)], shader, batch_cost)


def colour(nearest: np.ndarray, out: np.ndarray) -> None:
    """Copy the sRGB bytes that `draw` packed into `nearest`'s keys into `out` [Tc, H, W, 3]."""
    key_bytes = nearest.view(np.uint8).reshape(-1, 8)
    pixels = out.reshape(-1, 3)
    for channel in range(3):
        pixels[:, channel] = key_bytes[:, _COLOUR_BYTES[channel]]


def _hidden(triangles: Triangles, nearest: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Which triangles of `subset` lie behind fully covered 8 x 8 tiles (their box spans at
    most 2 x 2 tiles) whose farthest pixel is nearer than the triangle's nearest corner."""
    shift, width, height = 3, triangles.width, triangles.height
    size = 1 << shift
    rows, columns = -(-height // size), -(-width // size)
    keys = nearest.reshape(-1, height, width)
    if (rows * size, columns * size) != (height, width):  # partial tiles count as uncovered
        keys = np.pad(keys, ((0, 0), (0, rows * size - height), (0, columns * size - width)))
    # Rows of each tile first: that reduction runs along whole image rows, faster than numpy's
    # min over both tile axes at once.
    tiles = keys.reshape(len(keys), rows, size, columns, size).min(axis=2).min(axis=3)  # 0: a hole
    tiles[:, :-1] = np.minimum(tiles[:, :-1], tiles[:, 1:])  # min over the 2 x 2 tiles from
    tiles[:, :, :-1] = np.minimum(tiles[:, :, :-1], tiles[:, :, 1:])  # each tile on
    i0, j0 = triangles.i0.take(subset), triangles.j0.take(subset)
    tx, ty = i0 >> shift, j0 >> shift
    fits = ((i0 + triangles.columns.take(subset) - 1) >> shift) - tx <= 1
    fits &= ((j0 + triangles.rows.take(subset) - 1) >> shift) - ty <= 1
    tile = (triangles.frame.take(subset) * rows + ty) * columns + tx
    farthest = tiles.ravel().take(tile) >> 32
    return fits & (farthest > triangles.nearest_depth.take(subset).view(np.int32))


def _showing(triangles: Triangles, nearest: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Which triangles of `subset` could still win a pixel: some pixel of their window (see
    `_scatter_windows`) is empty or drawn farther than their nearest corner."""
    width, height = triangles.width, triangles.height
    showing = np.zeros(len(subset), dtype=bool)
    order, batches = window_batches(triangles.columns.take(subset), triangles.rows.take(subset), width, height)
    place = triangles.place.take(subset.take(order), axis=1)
    nearest_depth = triangles.nearest_depth.view(np.int32).take(subset.take(order))
    for part, columns, rows in batches:
        i0, j0, frame = place[:, part]
        first_row, first_column = np.minimum(j0, height - rows), np.minimum(i0, width - columns)
        start = (frame.astype(np.int64) * height + first_row) * width + first_column
        offset = (np.arange(rows)[:, None] * width + np.arange(columns)).ravel()
        farthest = nearest.take(offset[:, None] + start).min(axis=0) >> 32  # 0, a hole, hides nothing
        showing[order[part]] = farthest <= nearest_depth[part]
    return showing


def _scatter(
    triangles: Triangles, nearest: np.ndarray, subset: np.ndarray, shader: Shader | None, batch_cost: int
) -> None:
    """Rasterise the triangles `subset` into `nearest` (see `draw`), those reaching past the
    guard band by their float64-set-up edge distances."""
    if triangles.far is not None:
        far = triangles.far[subset]
        if far.any():
            _scatter_windows(triangles, nearest, subset[far], True, shader, batch_cost)
            subset = subset[~far]
    _scatter_windows(triangles, nearest, subset, False, shader, batch_cost)


@dataclass(frozen=True)
class _Window:
    """The candidate pixels of a batch of `rows` x `columns` windows, one per triangle, where
    `grid` evaluates affine quantities. Values are set up at the triangle's box's first pixel
    centre; a window shifted to stay inside the image starts (`shift_x`, `shift_y`) pixels from
    there (None: no window of the batch is shifted) and covers extra pixels outside the box,
    which fail the inside test. With `triangles_inner` the grids are [rows, columns, triangles]
    (long inner loops for many small windows), else [triangles, rows, columns]."""

    column_steps: np.ndarray  # 0 .. columns - 1, float32
    row_steps: np.ndarray
    shift_x: np.ndarray | None
    shift_y: np.ndarray | None
    triangles_inner: bool

    def grid(self, value: np.ndarray, step_x: np.ndarray, step_y: np.ndarray) -> np.ndarray:
        """An affine quantity (per triangle: value at the box's first pixel centre, steps per
        pixel in x and y) at every candidate pixel."""
        base = value if self.shift_x is None else value + step_x * self.shift_x + step_y * self.shift_y
        if self.triangles_inner:
            return (base + self.row_steps[:, None] * step_y)[:, None, :] + (self.column_steps[:, None] * step_x)[None]
        return (base[:, None] + step_y[:, None] * self.row_steps)[:, :, None] + (step_x[:, None] * self.column_steps)[
            :, None, :
        ]


def _scatter_windows(
    triangles: Triangles, nearest: np.ndarray, subset: np.ndarray, far: bool, shader: Shader | None, batch_cost: int
) -> None:
    """Rasterise `subset`, all near (barycentric test) or all `far` (edge-distance test), and
    shade every hit: its key's low bytes are its 8-bit colour by `shader`, or its triangle
    without one (see `draw`)."""
    width, height = triangles.width, triangles.height
    sizes = triangles.columns.take(subset), triangles.rows.take(subset)
    order, batches = window_batches(*sizes, width, height, batch_cost)
    # Gathered once in batch order, so that each batch reads contiguous slices.
    subset = subset.take(order)
    labels = subset + 1  # a key's low bits without a shader (see `draw`)
    place = triangles.place.take(subset, axis=1)
    set_up = triangles.set_up(subset, far)
    for part, columns, rows in batches:
        i0, j0, frame = place[:, part]
        shifted = i0.max() > width - columns or j0.max() > height - rows
        ox = np.minimum(i0, width - columns) if shifted else i0
        oy = np.minimum(j0, height - rows) if shifted else j0
        start = (frame.astype(np.int64) * height + oy) * width + ox  # int64: a chunk's pixel count
        offset = (np.arange(rows)[:, None] * width + np.arange(columns)).ravel()
        window = _Window(
            np.arange(columns, dtype=np.float32),
            np.arange(rows, dtype=np.float32),
            (ox - i0).astype(np.float32) if shifted else None,
            (oy - j0).astype(np.float32) if shifted else None,
            len(i0) >= columns,
        )
        rows_of_batch = set_up[:, part]
        hits = np.flatnonzero(_inside(window, rows_of_batch, far))
        # Hit h is candidate (cell, triangle) of the window: h = cell * k + local when
        # triangles are innermost, local * cells + cell otherwise.
        if window.triangles_inner:  # floor_divide by a scalar is fast (libdivide); divmod is not
            cell = hits // len(i0)
            local = hits - cell * len(i0)
        else:
            local = hits // (rows * columns)
            cell = hits - local * (rows * columns)
        if shader is None:
            key = _depth_key(window, rows_of_batch, hits)
            key |= labels[part].take(local)
        else:
            key = _shade(window, rows_of_batch, hits, shader)
        _scatter_max(nearest, start.take(local) + offset.take(cell), key)


def _inside(window: _Window, set_up: np.ndarray, far: bool) -> np.ndarray:
    """Which candidate pixels of `window` lie inside their triangle, by the triangles' `set_up`
    rows (`triangles` module docstring): the edge-distance test when `far`, else barycentric."""
    if far:
        inside = window.grid(*set_up[EDGES[0]]) >= -EDGE_TOLERANCE
        inside &= window.grid(*set_up[EDGES[1]]) >= -EDGE_TOLERANCE
        inside &= window.grid(*set_up[EDGES[2]]) >= -EDGE_TOLERANCE
        return inside
    slack = list(set_up[SLACK])
    bary0 = window.grid(*set_up[B0])
    bary1 = window.grid(*set_up[B1])
    if not window.triangles_inner:
        slack = [v[:, None, None] for v in slack]
    inside = bary0 >= slack[0]
    inside &= bary1 >= slack[1]
    bary0 += bary1
    inside &= bary0 <= slack[2]
    return inside


def _shade(window: _Window, set_up: np.ndarray, hits: np.ndarray, shader: Shader) -> np.ndarray:
    """The depth-test keys (see `draw`) of the candidate pixels `hits` of `window`."""
    depth = window.grid(*set_up[INVERSE_Z]).ravel().take(hits)
    key = _key_of(depth)
    values = [window.grid(*set_up[quantity]).ravel().take(hits) for quantity in CHANNELS]
    key_bytes = key.view(np.uint8).reshape(-1, 8)
    for channel, level in enumerate(shader.encode(values, depth)):
        key_bytes[:, _COLOUR_BYTES[channel]] = level
    return key


def _depth_key(window: _Window, set_up: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The depth-test keys of the candidate pixels `hits` of `window`, low 32 bits zero."""
    return _key_of(window.grid(*set_up[INVERSE_Z]).ravel().take(hits))


def _key_of(depth: np.ndarray) -> np.ndarray:
    """1/z (float32, positive) as the high 32 bits of an int64 key."""
    key = depth.view(np.int32).astype(np.int64)
    key <<= 32
    return key


def _scatter_max(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """`np.maximum.at(target, index, values)`, without holding the GIL: ufunc.at keeps it for
    its whole loop (numpy 1.26), which stalls the other render thread. A plain fancy store keeps
    the last of repeated indices; the few entries whose maximum it lost are stored again."""
    best = np.maximum(target.take(index), values)
    target[index] = best
    lost = np.flatnonzero(target.take(index) < best)
    if len(lost):
        np.maximum.at(target, index.take(lost), best.take(lost))
