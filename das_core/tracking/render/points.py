"""Points mode: every tracked point a filled rectangle in its first-frame colour, far to near
(ENCODING.md, "Points mode")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from das_core.tracking.colors import cotracker_colors, spatialtracker_colors
from das_core.tracking.render.canvas import Canvas, project_in_blocks, render_chunks
from das_core.tracking.render.windows import windows
from das_core.tracking.tracks import Tracks

COTRACKER_SIDE = 4  # the reference's point_wise; PIL fills [x - 2, x + 2], 5 pixels across
# Pixels drawn at once (one 720 x 480 frame).
_POINTS_CHUNK_PIXELS = 1 << 19


def render_points(tracks: Tracks, canvas: Canvas, sources: np.ndarray, style: str, progress: bool) -> np.ndarray:
    """Draw each point as a filled rectangle in its first-frame colour, far to near.

    SpatialTracker style (the reference's `Visualizer`): half-width floor(distance to the nearest
    other point at the first frame, in (x, y, depth) as the reference measures it) / 2, half-height
    half-width / 1.5, corners truncated to whole pixels and both included; every point is drawn,
    whatever `visibility` says, as the reference does. Each point keeps its own size in every frame
    (the reference, by a loop-variable slip, reuses the last point's size after the first frame,
    the same size on its regular 70 x 70 grids). CoTracker style: the pixel containing the
    point, +-2 pixels (the reference's 4-pixel PIL rectangle); points outside the image or not
    visible are skipped. Points at or behind the camera at the first frame have no colour and are
    never drawn; any point at or behind the camera in a frame is not drawn in that frame.
    """
    width, height = canvas.content_width, canvas.content_height
    uv0, z0 = project_in_blocks(tracks.points[0], tracks.world_to_camera[0], canvas.intrinsics[0])
    coloured = z0 > 0
    colors = np.zeros((tracks.num_points, 3), dtype=np.uint8)
    half_width = np.zeros(tracks.num_points)
    if style == "spatialtracker":
        colors[coloured] = spatialtracker_colors(uv0[coloured], z0[coloured])
        first = np.column_stack([uv0[coloured], z0[coloured]])
        nearest = nearest_distance(first)
        half_width[coloured] = np.where(np.isfinite(nearest), np.floor(nearest) / 2, 0)  # alone: 1 px
    else:
        colors[coloured] = cotracker_colors(canvas.to_canvas(uv0[coloured]), z0[coloured], canvas.width, canvas.height)

    visibility = tracks.visibility if style == "cotracker" else None

    def draw(chunk: np.ndarray, out: np.ndarray) -> None:
        uv, depth = _project_frames(tracks.points[chunk], tracks.world_to_camera[chunk], canvas.intrinsics[chunk])
        drawn = coloured[None] & (depth > 0)
        if visibility is not None:
            drawn &= visibility[chunk]
        rectangles = _rectangles(uv, drawn, half_width, style, width, height)
        _paint(out, rectangles, depth, colors)

    return render_chunks(sources, max(1, _POINTS_CHUNK_PIXELS // (width * height)), draw, (height, width), progress)


def _project_frames(
    points: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions [Tc, N, 2] and depths [Tc, N] of points [Tc, N, 3], a frame at a time."""
    num_frames, num_points = points.shape[:2]
    uv = np.empty((num_frames, num_points, 2))
    depth = np.empty((num_frames, num_points))
    for frame in range(num_frames):
        uv[frame], depth[frame] = project_in_blocks(points[frame], world_to_camera[frame], intrinsics[frame])
    return uv, depth


@dataclass(frozen=True)
class _Rectangles:
    """Each point's rectangle in each frame of a chunk, [Tc, N]: first and last pixel column and row,
    both included and inside the image, and whether it is drawn at all."""

    left: np.ndarray
    top: np.ndarray
    right: np.ndarray
    bottom: np.ndarray
    drawn: np.ndarray


def _rectangles(
    uv: np.ndarray, drawn: np.ndarray, half_width: np.ndarray, style: str, width: int, height: int
) -> _Rectangles:
    """The rectangles of points at `uv` [Tc, N, 2] in `style`, of those `drawn` [Tc, N] (in front
    and coloured, and visible for CoTracker), clipped to the `width` x `height` image."""
    u, v = np.nan_to_num(uv[..., 0]), np.nan_to_num(uv[..., 1])
    if style == "spatialtracker":
        half_height = half_width / 1.5
        left, right = np.trunc(u - half_width), np.trunc(u + half_width)
        top, bottom = np.trunc(v - half_height), np.trunc(v + half_height)
    else:
        column, row = np.trunc(u), np.trunc(v)
        drawn = drawn & (column >= 0) & (column < width) & (row >= 0) & (row < height)
        reach = COTRACKER_SIDE // 2
        left, right, top, bottom = column - reach, column + reach, row - reach, row + reach
    left, top = np.maximum(left, 0), np.maximum(top, 0)
    right, bottom = np.minimum(right, width - 1), np.minimum(bottom, height - 1)
    return _Rectangles(left, top, right, bottom, drawn & (right >= left) & (bottom >= top))


def _paint(out: np.ndarray, rectangles: _Rectangles, depth: np.ndarray, colors: np.ndarray) -> None:
    """Paint one chunk of frames into `out` [Tc, H, W, 3] (every pixel, black where no rectangle
    is): the rectangles [Tc, N] in the points' `colors` [N, 3], resolved per pixel by painter's
    order of `depth` [Tc, N]."""
    num_frames, height, width = out.shape[:3]
    num_points = depth.shape[1]
    out[...] = 0
    # Painter's order: far to near (stable, so equal depths keep point order); the last drawn,
    # i.e. the highest rank, owns a pixel. Ranks are stored plus one, so 0 means unpainted.
    order = np.argsort(-depth, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(num_points)[None], axis=1)

    selected = np.flatnonzero(rectangles.drawn)
    frame_of = selected // num_points
    left = rectangles.left.ravel()[selected].astype(np.int64)
    top = rectangles.top.ravel()[selected].astype(np.int64)
    columns = rectangles.right.ravel()[selected].astype(np.int64) - left + 1
    rows = rectangles.bottom.ravel()[selected].astype(np.int64) - top + 1
    start = (frame_of * height + top) * width + left
    # A pixel keeps the largest frame * N + rank + 1 painted on it (0: unpainted); frames never
    # share a pixel, so within a frame that is the highest rank.
    dtype = np.int32 if num_frames * num_points < 2**31 - 1 else np.int64
    value = (frame_of * num_points + rank.ravel()[selected] + 1).astype(dtype)

    painted: np.ndarray = np.zeros(num_frames * height * width, dtype=dtype)
    for batch, batch_columns, batch_rows in windows(columns, rows, width, height):
        offset = (np.arange(batch_rows)[:, None] * width + np.arange(batch_columns)).ravel()
        pixel = start[batch, None] + offset
        values = np.broadcast_to(value[batch, None], pixel.shape)
        if (columns[batch] != batch_columns).any() or (rows[batch] != batch_rows).any():
            inside = (np.arange(batch_columns) < columns[batch, None, None]) & (
                np.arange(batch_rows)[:, None] < rows[batch, None, None]
            )
            inside = inside.reshape(len(batch), -1)
            pixel, values = pixel[inside], values[inside]
        np.maximum.at(painted, pixel.ravel(), values.ravel())

    covered = np.flatnonzero(painted)
    point = order.ravel()[painted[covered] - 1]
    pixels = out.reshape(-1, 3)
    for channel in range(3):  # a channel at a time: numpy scatters 3-byte rows slowly
        pixels[covered, channel] = colors[point, channel]


def nearest_distance(points: np.ndarray) -> np.ndarray:
    """Distance from each point [N, D] to its nearest other point (inf when there is none).

    Coincident points (distance 0) do not count, as in the reference. Points are bucketed into
    cells of about two points each by their first two coordinates; a neighbour within one cell
    size is always in the 3 x 3 cells around, and the few points whose nearest neighbour is
    farther are measured against all points.
    """
    count = len(points)
    best = np.full(count, np.inf)
    if count < 2:
        return best
    plane = points[:, :2]
    low = plane.min(axis=0)
    extent = np.maximum(plane.max(axis=0) - low, 1e-9)
    cell = max(float(1.5 * np.sqrt(extent[0] * extent[1] / count)), 1e-9)
    cells = np.floor((plane - low) / cell).astype(np.int64) + 1
    stride = int(cells[:, 0].max()) + 2
    cell_id = cells[:, 1] * stride + cells[:, 0]
    order = np.argsort(cell_id, kind="stable")
    sorted_ids = cell_id[order]

    best_squared = best.copy()
    for offset in (dy * stride + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
        first = np.searchsorted(sorted_ids, cell_id + offset, side="left")
        occupancy = np.searchsorted(sorted_ids, cell_id + offset, side="right") - first
        most = int(occupancy.max())
        if most > 64:  # badly clustered points: measure everything against everything
            best_squared[:] = np.inf
            break
        for slot in range(most):
            i = np.flatnonzero(occupancy > slot)
            difference = points[order[first[i] + slot]] - points[i]
            squared = np.einsum("ij,ij->i", difference, difference)
            better = (squared > 0) & (squared < best_squared[i])
            best_squared[i[better]] = squared[better]
    best = np.sqrt(best_squared)

    far = np.flatnonzero(best > cell)
    for start in range(0, len(far), 256):
        i = far[start : start + 256]
        distance = np.linalg.norm(points[None, :, :] - points[i, None, :], axis=2)
        distance[distance == 0] = np.inf
        best[i] = distance.min(axis=1)
    return best
