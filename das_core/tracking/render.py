"""The tracking video ("the shader"): Tracks in, uint8 frames [T, H, W, 3] out, as DaS encodes motion.

Spec §1 is the contract. Every point keeps the colour it had at the first frame (see
`das_core.tracking.colors`) and is drawn where it is in each frame, on black:

- mesh mode draws the surfaces, as the reference's Blender render does: per-vertex colours
  decoded from sRGB to linear light, interpolated perspective-correctly across each triangle,
  encoded back to sRGB; nearest surface wins (z-buffer); no back-face culling; triangles that cross
  the camera plane are clipped at `NEAR_PLANE` in camera space (never projected from behind).
- points mode draws filled rectangles far-to-near (painter's order), in the SpatialTracker or
  CoTracker style of the reference.

The output is the tracks' width x height, or, with `fit=(width, height)` (the model's 720 x 480),
the tracking video drawn straight into the letterboxed canvas of the project's one aspect policy
(`das_core.tracking.video.letterbox_rect`, shared with `fit_frames`, which fits the reference image): the
camera's image is scaled into the centred content rectangle, and the colours name positions in
the CANVAS (R = x / canvas width, G = y / canvas height), because the model reads a first-frame
colour as that point's position in the frame it is given. A vertex outside the camera's frame at
the first frame stays black (the camera did not see it), and the bars are black in every frame
(the camera never sees there). B, inverse distance, does not depend on the frame.

Numpy only (it runs inside Blender). The rasteriser is vectorised: triangles of all frames in a
chunk are grouped by bounding-box size, every candidate pixel of a group is tested and shaded at
once, and depth is resolved by a scatter-max of int64 keys: 1/z above, the fragment's sRGB bytes
below, so the nearest fragment's colour is left in each pixel.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from das_core.errors import DasError
from das_core.tracking.camera import project
from das_core.tracking.colors import (
    SRGB8_TABLE,
    SRGB8_TABLE_SIZE,
    cotracker_colors,
    mesh_vertex_colors,
    spatialtracker_colors,
    srgb8_to_linear,
)
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import letterbox_rect, sample_indices

__all__ = ["MODES", "NEAR_PLANE", "POINT_STYLES", "RenderError", "render_tracking"]

MODES = ("mesh", "points")
POINT_STYLES = ("spatialtracker", "cotracker")
NEAR_PLANE = 1e-3  # camera-space z (scene units) where triangles are clipped
COTRACKER_SIDE = 4  # the reference's point_wise; PIL fills [x - 2, x + 2], 5 pixels across

# Work sizes. Mesh mode draws a chunk of frames at once (up to `_MESH_CHUNK_PIXELS` pixels and
# `_CHUNK_TRIANGLES` triangles: six 720 x 480 frames of the 65 k-triangle sphere, two of a 261 k
# one): each window size's candidate batch then holds triangles of several frames and shares
# numpy's per-call overhead, which holds the GIL. Points mode draws `_POINTS_CHUNK_PIXELS` at
# once (one 720 x 480 frame). Then candidate pixels per vectorised batch, and threads.
_MESH_CHUNK_PIXELS = 1 << 21
_CHUNK_TRIANGLES = 1 << 19
_POINTS_CHUNK_PIXELS = 1 << 19
_THREADS = 2
_PROJECT_BLOCK = 1 << 14  # points per matrix product (see `_project`)
# Slack of the inside test in pixels, so a pixel centre exactly on an edge or vertex (a mesh's
# outline, say) is covered despite float rounding.
_EDGE_TOLERANCE = 1e-3
# Triangles with a vertex farther than this many pixels outside the image (a close-up plane, the
# parts of a triangle clipped at the near plane: up to millions of pixels away) are tested with
# float64-set-up edge distances: float32 barycentrics lose ~1e-7 of the triangle's size, more
# than the edge slack, and neighbours would disagree about their shared edge (pinholes).
_GUARD_BAND = 1024
_BATCH_CANDIDATES = 1 << 18  # candidate pixels tested at once (a float32 temporary of 1 MB, in cache)
# Window sizes that candidate batches are grouped by: up to 3 pixels, then doubling. Coarse on
# purpose: a batch costs some 90 numpy calls, each holding the GIL for a moment while the other
# thread waits, so fewer, larger batches beat snug windows (with exact sizes up to 8 and 1.5x
# steps, the benchmark sphere took 0.45 s on two threads; with these, 0.32 s).
_LADDER = 3 * 2 ** np.arange(30)
# Where a depth-test key (int64) keeps its pixel's red, green and blue bytes: its lowest three.
_COLOUR_BYTES = (0, 1, 2) if sys.byteorder == "little" else (7, 6, 5)


class RenderError(DasError):
    """A render request that cannot be met (wrong mode, no faces for mesh mode, bad frame count)."""


def render_tracking(
    tracks: Tracks,
    mode: str = "mesh",
    num_frames: int = 49,
    *,
    fit: tuple[int, int] | None = None,
    point_style: str = "spatialtracker",
    progress: bool = False,
) -> np.ndarray:
    """Render the DaS tracking video of `tracks`: uint8 [num_frames, height, width, 3].

    The T source frames are sampled to `num_frames` with `video.sample_indices` (evenly spaced,
    first and last included). Colours come from the first source frame. `mode` is "mesh" (needs
    `tracks.faces`) or "points" (every tracked point as a rectangle; `point_style` picks the
    reference's "spatialtracker" or "cotracker" look). The frames are the tracks' width x height,
    or with `fit=(width, height)` that size, drawn directly into the letterboxed canvas (module
    docstring: colours are canvas positions, bars black); a fit equal to the tracks' size changes
    nothing. `progress` shows a tqdm bar over frames.
    """
    if mode not in MODES:
        raise RenderError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if point_style not in POINT_STYLES:
        raise RenderError(f"point_style must be one of {', '.join(POINT_STYLES)}, got {point_style!r}")
    if not isinstance(tracks, Tracks):
        raise RenderError(f"render_tracking needs a Tracks object, got {type(tracks).__name__}")
    if mode == "mesh" and (tracks.faces is None or len(tracks.faces) == 0):
        raise RenderError("mesh mode needs faces, but these tracks have none; render them with mode 'points'")
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
        raise RenderError(f"num_frames must be a positive whole number, got {num_frames!r}")
    canvas = _Canvas.fitting(tracks, fit)

    # Each distinct source frame is drawn once; repeats (fewer source frames than asked) are copies.
    sources, where = np.unique(sample_indices(tracks.num_frames, int(num_frames)), return_inverse=True)
    if mode == "mesh":
        frames = _render_mesh(tracks, canvas, sources, progress)
    else:
        frames = _render_points(tracks, canvas, sources, point_style, progress)
    frames = canvas.place(frames)
    return frames if len(sources) == num_frames else frames[where.reshape(-1)]


@dataclass(frozen=True)
class _Canvas:
    """The output frame: `width` x `height`, with the camera's image scaled into the content
    rectangle at (`left`, `top`), `content_width` x `content_height` (all of it without a fit).
    `intrinsics` [T, 3, 3] are the tracks' camera intrinsics in content-rectangle pixels; the
    renderers draw at the content size, and `place` puts that into the canvas."""

    width: int
    height: int
    left: int
    top: int
    content_width: int
    content_height: int
    intrinsics: np.ndarray

    @classmethod
    def fitting(cls, tracks: Tracks, fit: tuple[int, int] | None) -> _Canvas:
        """The canvas of `render_tracking(tracks, fit=fit)`: letterboxed with `letterbox_rect`."""
        if fit is None:
            fit = (tracks.width, tracks.height)
        if (
            not isinstance(fit, (tuple, list))
            or len(fit) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in fit)
        ):
            raise RenderError(f"fit must be (width, height) in whole pixels, both positive, got {fit!r}")
        width, height = int(fit[0]), int(fit[1])
        left, top, content_width, content_height = letterbox_rect(tracks.width, tracks.height, width, height)
        intrinsics = tracks.intrinsics
        if (content_width, content_height) != (tracks.width, tracks.height):
            # Pixel (x, y) of the camera's image lands at (x * sx, y * sy) of the content
            # rectangle, as `fit_frames` resizes an image: scale the first two rows of K.
            scale = np.array([content_width / tracks.width, content_height / tracks.height, 1.0])
            intrinsics = (intrinsics * scale[:, None]).astype(tracks.intrinsics.dtype)
        return cls(width, height, left, top, content_width, content_height, intrinsics)

    @property
    def seen(self) -> tuple[int, int, int, int]:
        """The content rectangle as (left, top, right, bottom) canvas pixels: what the camera saw."""
        return self.left, self.top, self.left + self.content_width, self.top + self.content_height

    def to_canvas(self, uv: np.ndarray) -> np.ndarray:
        """Content-rectangle pixel positions [N, 2] to canvas positions."""
        return uv + np.array([self.left, self.top], dtype=uv.dtype)

    def place(self, frames: np.ndarray) -> np.ndarray:
        """Frames drawn at the content size [T, h, w, 3] put into black canvases [T, H, W, 3]."""
        if (self.content_width, self.content_height) == (self.width, self.height):
            return frames
        canvas = np.zeros((len(frames), self.height, self.width, 3), dtype=np.uint8)
        canvas[:, self.top : self.top + self.content_height, self.left : self.left + self.content_width] = frames
        return canvas


def _render_chunks(
    sources: np.ndarray,
    per_chunk: int,
    draw: Callable[[np.ndarray, np.ndarray], None],
    size: tuple[int, int],
    progress: bool,
) -> np.ndarray:
    """Draw the source frames in chunks of at most `per_chunk`, on up to `_THREADS` threads (numpy
    releases the GIL in its array loops): `draw(chunk, out)` sets every pixel of out, uint8
    [len(chunk), H, W, 3], uninitialised on entry (np.empty: numpy asks the kernel for huge pages
    for it, where np.zeros takes a page fault per 4 KB of the video). Returns uint8
    [len(sources), H, W, 3]. The chunks are of near-equal size and as many as a multiple of the
    threads, so no thread is left alone with a last one. With `progress`, a tqdm bar counts frames
    (tqdm is imported only then: Blender's Python, where the add-on renders, need not have it)."""
    frames = np.empty((len(sources), *size, 3), dtype=np.uint8)
    workers = max(1, min(_THREADS, os.cpu_count() or 1, len(sources)))
    count = -(-len(sources) // per_chunk)
    count = min(-(-count // workers) * workers, len(sources))
    bounds = np.linspace(0, len(sources), count + 1).round().astype(int).tolist()

    def run(first: int, last: int) -> int:
        draw(sources[first:last], frames[first:last])
        return last - first

    bar = _progress_bar(len(sources)) if progress else None
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(run, bounds[:-1], bounds[1:]):
                if bar is not None:
                    bar.update(done)
    finally:
        if bar is not None:
            bar.close()
    return frames


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="tracking video", unit="frame")


# ----------------------------------------------------------------------------------------------
# Mesh mode


def _render_mesh(tracks: Tracks, canvas: _Canvas, sources: np.ndarray, progress: bool) -> np.ndarray:
    """Rasterise the mesh at each source frame, coloured from frame 0, at the content size."""
    width, height = canvas.content_width, canvas.content_height
    uv, depth = _project(tracks.points[0], tracks.world_to_camera[0], canvas.intrinsics[0])
    distance = np.linalg.norm(tracks.points[0].astype(np.float64) - _camera_centre(tracks.world_to_camera[0]), axis=1)
    colors = mesh_vertex_colors(canvas.to_canvas(uv), depth, distance, canvas.width, canvas.height, seen=canvas.seen)
    linear = srgb8_to_linear(colors)
    depth_buffers = threading.local()  # one per thread, cleared for each chunk: no page faults

    def draw(chunk: np.ndarray, out: np.ndarray) -> None:
        size = out.shape[0] * height * width
        buffer = getattr(depth_buffers, "nearest", None)
        if buffer is None or buffer.size < size:
            buffer = depth_buffers.nearest = np.empty(size, dtype=np.int64)
        nearest = buffer[:size]
        nearest.fill(0)
        _rasterise(
            out,
            nearest,
            tracks.points[chunk],
            tracks.world_to_camera[chunk],
            canvas.intrinsics[chunk],
            tracks.faces,
            linear,
            width,
            height,
        )

    per_chunk = min(_MESH_CHUNK_PIXELS // (width * height), _CHUNK_TRIANGLES // len(tracks.faces))
    return _render_chunks(sources, max(1, per_chunk), draw, (height, width), progress)


def _project(points: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`camera.project` in blocks of `_PROJECT_BLOCK` points (the same numbers: every point is its
    own small product). OpenBLAS runs a bigger N x 3 x 3 product on several threads, which then
    busy-wait for ~0.1 s on the cores the renderer's threads are about to use."""
    splits = range(_PROJECT_BLOCK, len(points), _PROJECT_BLOCK)
    blocks = [project(block, world_to_camera, intrinsics) for block in np.split(points, splits)]
    return np.concatenate([uv for uv, _ in blocks]), np.concatenate([depth for _, depth in blocks])


def _camera_centre(world_to_camera: np.ndarray) -> np.ndarray:
    """World position of the camera centre: -R^-1 t."""
    matrix = np.asarray(world_to_camera, dtype=np.float64)
    return -np.linalg.solve(matrix[:3, :3], matrix[:3, 3])


def _rasterise(
    out: np.ndarray,
    nearest: np.ndarray,
    points: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    width: int,
    height: int,
) -> None:
    """Draw `faces` at each of Tc frames (points [Tc, N, 3]) with linear vertex colours [N, 3]
    into `out`, uint8 [Tc, H, W, 3], every pixel (black where nothing is drawn). `nearest`,
    int64 [Tc * H * W] and zero on entry, is the depth buffer."""
    num_frames, num_vertices = points.shape[:2]
    # A frame at a time: einsum over several frames at once is several times slower per point.
    camera = np.concatenate(
        [np.einsum("tij,tnj->tni", world_to_camera[k : k + 1, :3, :3], points[k : k + 1]) for k in range(num_frames)]
    )
    camera += world_to_camera[:, None, :3, 3]
    x, y, inverse_z = _to_pixels(camera, intrinsics[:, None])
    precise = None  # float64 pixel positions, only when some triangle may need them
    band = ((-_GUARD_BAND, width + _GUARD_BAND), (-_GUARD_BAND, height + _GUARD_BAND))
    reaching = any(v.min() < lo or v.max() > hi for v, (lo, hi) in zip((x, y), band))
    if reaching or not (camera[..., 2] > NEAR_PLANE).all():
        precise = _precise_pixels(camera, intrinsics[:, None]).reshape(-1, 2)
    camera, x, y, inverse_z = camera.reshape(-1, 3), x.ravel(), y.ravel(), inverse_z.ravel()
    vertex_colors = np.tile(colors, (num_frames, 1))
    offsets = (np.arange(num_frames, dtype=np.int64) * num_vertices)[:, None]
    corners = [(offsets + faces[:, k]).ravel() for k in range(3)]
    triangle_frame = np.repeat(np.arange(num_frames, dtype=np.int32), len(faces))

    # Triangles crossing the camera plane are replaced by their clipped parts, with new vertices.
    in_front = camera[:, 2] > NEAR_PLANE
    if not in_front.all():
        front_count = in_front[corners[0]].astype(np.int8) + in_front[corners[1]] + in_front[corners[2]]
        crossing = (front_count == 1) | (front_count == 2)
        whole = front_count == 3
        new_camera, new_colors, new_vertex_frame, clipped, clipped_frame = _clip_near(
            np.stack([c[crossing] for c in corners], axis=1),
            triangle_frame[crossing],
            camera,
            vertex_colors,
            in_front,
        )
        new_x, new_y, new_inverse_z = _to_pixels(new_camera, intrinsics[new_vertex_frame])
        x, y, inverse_z = np.r_[x, new_x], np.r_[y, new_y], np.r_[inverse_z, new_inverse_z]
        precise = np.concatenate([precise, _precise_pixels(new_camera, intrinsics[new_vertex_frame])])
        vertex_colors = np.concatenate([vertex_colors, new_colors])
        corners = [np.r_[c[whole], clipped[:, k]] for k, c in enumerate(corners)]
        triangle_frame = np.r_[triangle_frame[whole], clipped_frame]

    if not len(triangle_frame):  # everything is behind the camera
        out[...] = 0
        return
    triangles = _Triangles(corners, triangle_frame, x, y, inverse_z, precise, vertex_colors, width, height)
    # Depth test: per pixel keep the fragment with the largest (1/z, colour) key, i.e. the
    # nearest surface; 1/z is positive, so its float bits order like the numbers.
    triangles.draw(nearest)
    triangles.colour(nearest, out)


def _to_pixels(camera: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-space points [..., 3] to pixel x, y and 1/z (0 where z <= 0), float32.

    `intrinsics` [..., 3, 3] broadcasts against the points' leading dimensions.
    """
    z = camera[..., 2]
    inverse_z = np.zeros(z.shape, dtype=np.float32)
    np.divide(1.0, z, out=inverse_z, where=z > 0)
    x = (intrinsics[..., 0, 0] * camera[..., 0] + intrinsics[..., 0, 1] * camera[..., 1]) * inverse_z
    y = intrinsics[..., 1, 1] * camera[..., 1] * inverse_z
    return (x + intrinsics[..., 0, 2]).astype(np.float32), (y + intrinsics[..., 1, 2]).astype(np.float32), inverse_z


def _precise_pixels(camera: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-space points [..., 3] to pixel x, y in float64 [..., 2] (inf/NaN where z <= 0):
    positions millions of pixels away keep sub-pixel accuracy, which float32 does not."""
    z = camera[..., 2]
    precise = np.empty((*z.shape, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        precise[..., 0] = (intrinsics[..., 0, 0] * camera[..., 0] + intrinsics[..., 0, 1] * camera[..., 1]) / z
        precise[..., 1] = intrinsics[..., 1, 1] * camera[..., 1] / z
    precise[..., 0] += intrinsics[..., 0, 2]
    precise[..., 1] += intrinsics[..., 1, 2]
    return precise


def _clip_near(
    crossing: np.ndarray, frames: np.ndarray, camera: np.ndarray, colors: np.ndarray, in_front: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip triangles [C, 3] that have one or two vertices behind z = NEAR_PLANE.

    Returns the new vertices (camera positions, linear colours, frames), numbered from
    `len(camera)` on, and the triangles that replace the crossing ones with their frames.
    Attributes are interpolated linearly in camera space along each cut edge, which is exact
    for attributes that vary linearly over the 3D triangle (as colours do).
    """
    front = in_front[crossing]
    quad = front.sum(axis=1) == 2  # one vertex behind: a quad in front, cut into two triangles
    # Rotate each triangle (keeping its winding) so its odd vertex, the one behind or the one in
    # front, comes first.
    odd = np.where(quad, np.argmin(front, axis=1), np.argmax(front, axis=1))
    rows = np.arange(len(crossing))[:, None]
    a, b, c = crossing[rows, (odd[:, None] + np.arange(3)) % 3].T

    def cut(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = ((NEAR_PLANE - camera[p, 2]) / (camera[q, 2] - camera[p, 2]))[:, None]
        position = camera[p] + t * (camera[q] - camera[p])
        position[:, 2] = NEAR_PLANE
        return position, (colors[p] + t * (colors[q] - colors[p])).astype(colors.dtype)

    ab_position, ab_color = cut(a, b)
    ac_position, ac_color = cut(a, c)
    ab = len(camera) + np.arange(len(crossing))
    ac = ab + len(crossing)
    single = ~quad
    clipped = np.concatenate(
        [
            np.stack([ab[quad], b[quad], c[quad]], axis=1),
            np.stack([ab[quad], c[quad], ac[quad]], axis=1),
            np.stack([a[single], ab[single], ac[single]], axis=1),
        ]
    )
    return (
        np.concatenate([ab_position, ac_position]),
        np.concatenate([ab_color, ac_color]),
        np.concatenate([frames, frames]),
        clipped,
        np.concatenate([frames[quad], frames[quad], frames[single]]),
    )


# ----------------------------------------------------------------------------------------------
# Points mode


def _render_points(tracks: Tracks, canvas: _Canvas, sources: np.ndarray, style: str, progress: bool) -> np.ndarray:
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
    uv0, z0 = _project(tracks.points[0], tracks.world_to_camera[0], canvas.intrinsics[0])
    coloured = z0 > 0
    colors = np.zeros((tracks.num_points, 3), dtype=np.uint8)
    half_width = np.zeros(tracks.num_points)
    if style == "spatialtracker":
        colors[coloured] = spatialtracker_colors(uv0[coloured], z0[coloured])
        first = np.column_stack([uv0[coloured], z0[coloured]])
        nearest = _nearest_distance(first)
        half_width[coloured] = np.where(np.isfinite(nearest), np.floor(nearest) / 2, 0)  # alone: 1 px
    else:
        colors[coloured] = cotracker_colors(canvas.to_canvas(uv0[coloured]), z0[coloured], canvas.width, canvas.height)

    visibility = tracks.visibility if style == "cotracker" else None

    def draw(chunk: np.ndarray, out: np.ndarray) -> None:
        _paint_rectangles(
            out,
            tracks.points[chunk],
            tracks.world_to_camera[chunk],
            canvas.intrinsics[chunk],
            coloured,
            colors,
            half_width,
            None if visibility is None else visibility[chunk],
            style,
            width,
            height,
        )

    return _render_chunks(sources, max(1, _POINTS_CHUNK_PIXELS // (width * height)), draw, (height, width), progress)


def _paint_rectangles(
    out: np.ndarray,
    points: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    coloured: np.ndarray,
    colors: np.ndarray,
    half_width: np.ndarray,
    visibility: np.ndarray | None,
    style: str,
    width: int,
    height: int,
) -> None:
    """Paint one chunk of frames into `out` (every pixel, black where no rectangle is): rectangles
    resolved per pixel by painter's order."""
    out[...] = 0
    num_frames, num_points = points.shape[:2]
    uv = np.empty((num_frames, num_points, 2))
    depth = np.empty((num_frames, num_points))
    for frame in range(num_frames):
        uv[frame], depth[frame] = _project(points[frame], world_to_camera[frame], intrinsics[frame])
    drawn = coloured[None] & (depth > 0)
    u, v = np.nan_to_num(uv[..., 0]), np.nan_to_num(uv[..., 1])
    if style == "spatialtracker":
        half_height = half_width / 1.5
        left, right = np.trunc(u - half_width), np.trunc(u + half_width)
        top, bottom = np.trunc(v - half_height), np.trunc(v + half_height)
    else:
        column, row = np.trunc(u), np.trunc(v)
        drawn &= (column >= 0) & (column < width) & (row >= 0) & (row < height)
        if visibility is not None:
            drawn &= visibility
        reach = COTRACKER_SIDE // 2
        left, right, top, bottom = column - reach, column + reach, row - reach, row + reach
    left, top = np.maximum(left, 0), np.maximum(top, 0)
    right, bottom = np.minimum(right, width - 1), np.minimum(bottom, height - 1)
    drawn &= (right >= left) & (bottom >= top)

    # Painter's order: far to near (stable, so equal depths keep point order); the last drawn,
    # i.e. the highest rank, owns a pixel. Ranks are stored plus one, so 0 means unpainted.
    order = np.argsort(-depth, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(num_points)[None], axis=1)

    selected = np.flatnonzero(drawn)
    frame_of = selected // num_points
    left, top = left.ravel()[selected].astype(np.int64), top.ravel()[selected].astype(np.int64)
    columns = right.ravel()[selected].astype(np.int64) - left + 1
    rows = bottom.ravel()[selected].astype(np.int64) - top + 1
    start = (frame_of * height + top) * width + left
    # A pixel keeps the largest frame * N + rank + 1 painted on it (0: unpainted); frames never
    # share a pixel, so within a frame that is the highest rank.
    dtype = np.int32 if num_frames * num_points < 2**31 - 1 else np.int64
    value = (frame_of * num_points + rank.ravel()[selected] + 1).astype(dtype)

    painted = np.zeros(num_frames * height * width, dtype=dtype)
    for batch, batch_columns, batch_rows in _windows(columns, rows, width, height):
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


def _nearest_distance(points: np.ndarray) -> np.ndarray:
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


class _Triangles:
    """Screen-space triangles of a chunk of frames, culled and set up for rasterising (the rows the
    inside test and the shading read only for the triangles that get rasterised: `_near_rows`).

    Barycentrics b0, b1, 1/z and each colour channel times 1/z are affine in screen space, so each
    is kept as its value at the centre of the box's first pixel plus a gradient (a per pixel in x,
    b in y). A pixel centre belongs to the triangle when b0, b1 >= 0 and b0 + b1 <= 1, whichever
    way the triangle winds (no culling); its colour is (colour times 1/z) / (1/z), perspective-
    correct. A triangle reaching past `_GUARD_BAND` is instead tested by its three signed edge
    distances in pixels, set up in float64 (see `_far_setup`).
    """

    def __init__(
        self,
        corners: list[np.ndarray],
        frame: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        inverse_z: np.ndarray,
        precise: np.ndarray | None,
        colors: np.ndarray,
        width: int,
        height: int,
    ) -> None:
        """`precise` holds float64 pixel positions [V, 2] when a vertex may lie past the guard
        band (None when none does)."""
        self.width, self.height = width, height
        # Gathers use `take` throughout: faster than fancy indexing (for rows of a 2-D array, 2-4x).
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
        # memory traffic of int64 in every gather below.
        self.place = np.empty((3, len(frame)), dtype=np.int32)
        self.i0, self.j0, _ = self.place
        self.place[0], self.place[1], self.place[2] = i0, j0, frame
        self.columns, self.rows = (_pixel_count(first, last) for first, last in ((i0, i1), (j0, j1)))
        z0, z1, z2 = (inverse_z.take(c) for c in corners)
        self.z2 = z2
        self.area = area
        self.facing = area > 0  # one winding; which one faces the camera depends on the mesh
        self.nearest_depth = np.maximum(z0, z1)  # 1/z is largest at a corner
        np.maximum(self.nearest_depth, z2, out=self.nearest_depth)
        # What the inside test and the shading read is set up from these per-vertex values only
        # for the triangles that get rasterised (`_near_rows`): most hidden back faces never
        # need it. 1/z and each linear colour channel times 1/z are affine on screen.
        self.corners, self.x, self.y = corners, x, y
        self.affine = np.empty((4, len(inverse_z)), dtype=np.float32)
        self.affine[0] = inverse_z
        np.multiply(colors.T, inverse_z, out=self.affine[1:])  # (a product would be F-ordered)
        self.far = None
        if precise is not None:
            self.far = (
                (np.minimum(np.minimum(x0, x1), x2) < -_GUARD_BAND)
                | (np.maximum(np.maximum(x0, x1), x2) > width + _GUARD_BAND)
                | (np.minimum(np.minimum(y0, y1), y2) < -_GUARD_BAND)
                | (np.maximum(np.maximum(y0, y1), y2) > height + _GUARD_BAND)
            )
            ids = np.flatnonzero(self.far)
            self.far_slot = np.zeros(len(self.far), dtype=np.intp)
            self.far_slot[ids] = np.arange(len(ids))
            far_corners = [c[ids] for c in corners]
            self.far_edges = _far_setup(
                [precise[c] for c in far_corners],
                [inverse_z[c] for c in far_corners],
                [colors[c] for c in far_corners],
                self.i0[ids],
                self.j0[ids],
            )

    def _near_rows(self, subset: np.ndarray) -> np.ndarray:
        """What the barycentric inside test and the shading read, float32 [21, len(subset)]: the
        inside-test limits (`_EDGE_TOLERANCE` pixels past each edge, in barycentric units), the
        barycentric gradients a0, b0, a1, b1 and values b0, b1 at the box's first pixel centre,
        then for 1/z and for each linear colour channel times 1/z the value there and the
        gradient in x and in y."""
        rows = np.empty((21, len(subset)), dtype=np.float32)
        slack, (a0, b0, a1, b1), affine = rows[:3], rows[3:7], rows[9:]
        corners = [c.take(subset) for c in self.corners]
        x0, x1, x2 = (self.x.take(c) for c in corners)
        y0, y1, y2 = (self.y.take(c) for c in corners)
        area = self.area.take(subset)
        np.divide(y1 - y2, area, out=a0)
        np.divide(x2 - x1, area, out=b0)
        np.divide(y2 - y0, area, out=a1)
        np.divide(x0 - x2, area, out=b1)
        np.multiply(_length(a0, b0), -_EDGE_TOLERANCE, out=slack[0])
        np.multiply(_length(a1, b1), -_EDGE_TOLERANCE, out=slack[1])
        np.multiply(_length(a0 + a1, b0 + b1), _EDGE_TOLERANCE, out=slack[2])
        slack[2] += 1
        fx = self.i0.take(subset).astype(np.float32)
        fx += 0.5
        fx -= x2
        fy = self.j0.take(subset).astype(np.float32)
        fy += 0.5
        fy -= y2
        np.add(a0 * fx, b0 * fy, out=rows[7])
        np.add(a1 * fx, b1 * fy, out=rows[8])
        for k, values in enumerate(self.affine):
            v0, v1, v2 = (values.take(c) for c in corners)
            v0 -= v2
            v1 -= v2
            value, a, b = affine[3 * k : 3 * k + 3]
            np.add(v0 * a0, v1 * a1, out=a)
            np.add(v0 * b0, v1 * b1, out=b)
            np.add(v2, a * fx, out=value)
            value += b * fy
        return rows

    def draw(self, nearest: np.ndarray) -> None:
        """Scatter every fragment's key into `nearest` by max: its 1/z's float bits in the high
        32 bits, its 8-bit sRGB colour in the `_COLOUR_BYTES` (so the nearest fragment's colour
        is the pixel's; equally near ones, on a shared edge, the brightest).

        `nearest` has one int64 per pixel of the chunk: frame * H * W + row * W + column; 0 is
        an empty pixel.
        Triangles of the winding that is nearer on average (the front faces of a closed mesh) go
        first; then each other triangle is skipped when the surfaces already drawn cover its
        whole box and are all nearer than its nearest corner (it could not win a pixel), which
        spares most hidden back faces without culling any that could show: first by 8 x 8 tiles
        (`_hidden`, cheap), then pixel by pixel (`_showing`).
        """
        facing = self.facing
        count = facing.sum()
        if 0 < count < len(facing) and self.z2[facing].mean() < self.z2[~facing].mean():
            facing = ~facing
        self._scatter(nearest, np.flatnonzero(facing))
        rest = np.flatnonzero(~facing)
        if len(rest):
            rest = rest[~self._hidden(nearest, rest)]
            self._scatter(nearest, rest[self._showing(nearest, rest)])

    def _hidden(self, nearest: np.ndarray, subset: np.ndarray) -> np.ndarray:
        """Which triangles of `subset` lie behind fully covered 8 x 8 tiles (their box spans at
        most 2 x 2 tiles) whose farthest pixel is nearer than the triangle's nearest corner."""
        shift, width, height = 3, self.width, self.height
        size = 1 << shift
        rows, columns = -(-height // size), -(-width // size)
        keys = nearest.reshape(-1, height, width)
        if (rows * size, columns * size) != (height, width):  # partial tiles count as uncovered
            keys = np.pad(keys, ((0, 0), (0, rows * size - height), (0, columns * size - width)))
        # Rows of each tile first: that reduction runs along whole image rows, ~5x faster than
        # numpy's min over both tile axes at once.
        tiles = keys.reshape(len(keys), rows, size, columns, size).min(axis=2).min(axis=3)  # 0: a hole
        tiles[:, :-1] = np.minimum(tiles[:, :-1], tiles[:, 1:])  # min over the 2 x 2 tiles from
        tiles[:, :, :-1] = np.minimum(tiles[:, :, :-1], tiles[:, :, 1:])  # each tile on
        i0, j0 = self.i0.take(subset), self.j0.take(subset)
        tx, ty = i0 >> shift, j0 >> shift
        fits = ((i0 + self.columns.take(subset) - 1) >> shift) - tx <= 1
        fits &= ((j0 + self.rows.take(subset) - 1) >> shift) - ty <= 1
        tile = (self.frame.take(subset) * rows + ty) * columns + tx
        farthest = tiles.ravel().take(tile) >> 32
        return fits & (farthest > self.nearest_depth.take(subset).view(np.int32))

    def _showing(self, nearest: np.ndarray, subset: np.ndarray) -> np.ndarray:
        """Which triangles of `subset` could still win a pixel: some pixel of their window (see
        `_scatter_windows`) is empty or drawn farther than their nearest corner."""
        width, height = self.width, self.height
        showing = np.zeros(len(subset), dtype=bool)
        order, batches = _window_batches(self.columns.take(subset), self.rows.take(subset), width, height)
        place = self.place.take(subset.take(order), axis=1)
        nearest_depth = self.nearest_depth.view(np.int32).take(subset.take(order))
        for part, columns, rows in batches:
            i0, j0, frame = place[:, part]
            first_row, first_column = np.minimum(j0, height - rows), np.minimum(i0, width - columns)
            start = (frame.astype(np.int64) * height + first_row) * width + first_column
            offset = (np.arange(rows)[:, None] * width + np.arange(columns)).ravel()
            farthest = nearest.take(offset[:, None] + start).min(axis=0) >> 32  # 0, a hole, hides nothing
            showing[order[part]] = farthest <= nearest_depth[part]
        return showing

    def _scatter(self, nearest: np.ndarray, subset: np.ndarray) -> None:
        """Rasterise the triangles `subset` into `nearest` (see `draw`), those reaching past the
        guard band by their float64-set-up edge distances."""
        if self.far is not None:
            far = self.far[subset]
            if far.any():
                self._scatter_windows(nearest, subset[far], True)
                subset = subset[~far]
        self._scatter_windows(nearest, subset, False)

    def _scatter_windows(self, nearest: np.ndarray, subset: np.ndarray, far: bool) -> None:
        """Rasterise `subset`, all near (barycentric test) or all `far` (edge-distance test), and
        shade every hit: its key's low bytes are its 8-bit sRGB colour (see `draw`)."""
        width, height = self.width, self.height
        order, batches = _window_batches(self.columns.take(subset), self.rows.take(subset), width, height)
        # Gathered once in batch order, so that each batch reads contiguous slices.
        subset = subset.take(order)
        place = self.place.take(subset, axis=1)
        tests = self.far_edges.take(self.far_slot[subset], axis=1) if far else self._near_rows(subset)
        for part, columns, rows in batches:
            i0, j0, frame = place[:, part]
            inside_rows, affine_rows = tests[:9, part], tests[9:, part]
            # Values are set up at the box's first pixel centre. Windows shifted to stay inside
            # the image start elsewhere and cover extra pixels outside the triangle's bounding
            # box; those fail the inside test.
            shifted = i0.max() > width - columns or j0.max() > height - rows
            ox = np.minimum(i0, width - columns) if shifted else i0
            oy = np.minimum(j0, height - rows) if shifted else j0
            start = (frame.astype(np.int64) * height + oy) * width + ox  # int64: a chunk's pixel count
            offset = (np.arange(rows)[:, None] * width + np.arange(columns)).ravel()
            if shifted:
                fx = (ox - i0).astype(np.float32)
                fy = (oy - j0).astype(np.float32)
            dx = np.arange(columns, dtype=np.float32)
            dy = np.arange(rows, dtype=np.float32)
            # Long inner loops: triangles innermost for many small windows, pixels otherwise.
            triangles_inner = len(i0) >= columns

            def grid(start: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
                base = start + a * fx + b * fy if shifted else start
                if triangles_inner:  # [rows, columns, triangles]
                    return (base + dy[:, None] * b)[:, None, :] + (dx[:, None] * a)[None, :, :]
                return (base[:, None] + b[:, None] * dy)[:, :, None] + (a[:, None] * dx)[:, None, :]

            if far:
                n0x, n0y, e0, n1x, n1y, e1, n2x, n2y, e2 = inside_rows
                inside = grid(e0, n0x, n0y) >= -_EDGE_TOLERANCE
                inside &= grid(e1, n1x, n1y) >= -_EDGE_TOLERANCE
                inside &= grid(e2, n2x, n2y) >= -_EDGE_TOLERANCE
            else:
                *slack, a0, b0, a1, b1, start0, start1 = inside_rows
                bary0 = grid(start0, a0, b0)
                bary1 = grid(start1, a1, b1)
                if not triangles_inner:
                    slack = [v[:, None, None] for v in slack]
                inside = bary0 >= slack[0]
                inside &= bary1 >= slack[1]
                bary0 += bary1
                inside &= bary0 <= slack[2]
            hits = np.flatnonzero(inside)
            depth = grid(*affine_rows[:3]).ravel().take(hits)
            key = depth.view(np.int32).astype(np.int64)
            key <<= 32
            # Perspective-correct: colour times 1/z is affine; its ratio to 1/z is the colour.
            scale = SRGB8_TABLE_SIZE / depth
            key_bytes = key.view(np.uint8).reshape(-1, 8)
            for channel in range(3):
                level = grid(*affine_rows[3 + 3 * channel : 6 + 3 * channel]).ravel().take(hits)
                level *= scale
                np.minimum(level, SRGB8_TABLE_SIZE - 1, out=level)
                # Clipped: a hit just outside its triangle (within the edge slack) can extrapolate
                # below 0.
                key_bytes[:, _COLOUR_BYTES[channel]] = SRGB8_TABLE.take(level.astype(np.int32), mode="clip")
            # Hit h is candidate (cell, triangle) of the window: h = cell * k + local when
            # triangles are innermost, local * cells + cell otherwise.
            if triangles_inner:  # floor_divide by a scalar is fast (libdivide); divmod is not
                cell = hits // len(i0)
                local = hits - cell * len(i0)
            else:
                local = hits // (rows * columns)
                cell = hits - local * (rows * columns)
            _scatter_max(nearest, start.take(local) + offset.take(cell), key)

    @staticmethod
    def colour(nearest: np.ndarray, out: np.ndarray) -> None:
        """Copy the sRGB bytes that `draw` packed into `nearest`'s keys into `out` [Tc, H, W, 3]."""
        key_bytes = nearest.view(np.uint8).reshape(-1, 8)
        pixels = out.reshape(-1, 3)
        for channel in range(3):
            pixels[:, channel] = key_bytes[:, _COLOUR_BYTES[channel]]


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


def _scatter_max(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """`np.maximum.at(target, index, values)`, without holding the GIL: ufunc.at keeps it for
    its whole loop (numpy 1.26), which stalls the other render thread. A plain fancy store keeps
    the last of repeated indices; the few entries whose maximum it lost are stored again."""
    best = np.maximum(target.take(index), values)
    target[index] = best
    lost = np.flatnonzero(target.take(index) < best)
    if len(lost):
        np.maximum.at(target, index.take(lost), best.take(lost))


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.hypot(a, b)`, five times faster where the squares do not overflow float32 (a sliver
    triangle's gradients can be huge)."""
    length = a * a
    length += b * b
    if np.isinf(length).any():  # NaN (a degenerate triangle) stays NaN either way
        return np.hypot(a, b)
    return np.sqrt(length, out=length)


def _far_setup(
    corners: list[np.ndarray], inverse_z: list[np.ndarray], colors: list[np.ndarray], i0: np.ndarray, j0: np.ndarray
) -> np.ndarray:
    """Inside-test and shading rows, float32 [21, F], of triangles reaching past the guard band.

    `corners` are their float64 pixel positions (3 x [F, 2]), `inverse_z` 1/z at each corner
    (3 x [F]), `colors` the linear colours there (3 x [F, 3]), (`i0`, `j0`) [F] the first pixels
    of their boxes. For each edge k (opposite corner k): its unit normal pointing into the
    triangle and the signed distance in pixels from the edge to the centre of pixel (i0, j0);
    then for 1/z and each colour channel times 1/z, the value there and the gradient in x and in
    y (as `_Triangles._near_rows`). All are evaluated in
    float64 near the pixels they are used at, so float32 steps of a few hundred pixels from there
    stay accurate to ~1e-5 pixels: a pixel centre on an edge shared by two triangles is within
    `_EDGE_TOLERANCE` of both, however far their corners lie. Degenerate triangles get NaN rows
    (every test false).
    """
    centre = np.stack([i0 + 0.5, j0 + 0.5], axis=1)
    (x0, y0), (x1, y1), (x2, y2) = (c.T for c in corners)
    area = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sign = np.where(area != 0, np.sign(area), np.nan)
        rows = []
        for k in range(3):
            start, end = corners[(k + 1) % 3], corners[(k + 2) % 3]
            direction = end - start
            scale = sign / np.hypot(direction[:, 0], direction[:, 1])
            normal = np.stack([-direction[:, 1] * scale, direction[:, 0] * scale])
            rows += [normal[0], normal[1], np.einsum("ij,ji->i", centre - start, normal)]
        # Affine values' gradients from the barycentric gradients (a_k in x, b_k in y).
        a0, b0, a1, b1 = (y1 - y2) / area, (x2 - x1) / area, (y2 - y0) / area, (x0 - x2) / area
    z0, z1, z2 = (z.astype(np.float64) for z in inverse_z)
    fx, fy = centre[:, 0] - x2, centre[:, 1] - y2
    for channel in (None, 0, 1, 2):
        v0, v1, v2 = (z0, z1, z2) if channel is None else (c[:, channel] * z for c, z in zip(colors, (z0, z1, z2)))
        a = (v0 - v2) * a0 + (v1 - v2) * a1
        b = (v0 - v2) * b0 + (v1 - v2) * b1
        rows += [v2 + a * fx + b * fy, a, b]
    return np.stack(rows).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _ladder_steps(largest: int) -> np.ndarray:
    """For each size 0..largest, the index of the smallest `_LADDER` size that holds it."""
    return np.searchsorted(_LADDER, np.arange(largest + 1)).astype(np.int16)


def _windows(columns: np.ndarray, rows: np.ndarray, max_columns: int, max_rows: int):
    """Yield (indices, columns, rows) batches of `_window_batches`."""
    order, batches = _window_batches(columns, rows, max_columns, max_rows)
    for part, width, height in batches:
        yield order[part], width, height


def _window_batches(
    columns: np.ndarray, rows: np.ndarray, max_columns: int, max_rows: int
) -> tuple[np.ndarray, list[tuple[slice, int, int]]]:
    """Group windows of columns x rows pixels by size: (order, batches), where each batch
    (part, columns, rows) is the windows `order[part]`, all within columns x rows.

    Sizes are rounded up to the `_LADDER` (3, then doubling), so there are few groups, each
    with the window of its largest member, and a group is cut into batches of at most
    `_BATCH_CANDIDATES` pixels (a close-up plane stays bounded).
    """
    if not len(columns):
        return np.zeros(0, dtype=np.intp), []
    step = _ladder_steps(max(max_columns, max_rows))
    key = step[columns] * len(_LADDER) + step[rows]
    order = np.argsort(key, kind="stable")  # radix sort: the keys are int16
    bounds = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1, len(order)]
    widths = np.minimum(np.maximum.reduceat(columns[order], bounds[:-1]), max_columns)
    heights = np.minimum(np.maximum.reduceat(rows[order], bounds[:-1]), max_rows)
    batches = []
    for first, last, width, height in zip(bounds[:-1].tolist(), bounds[1:].tolist(), widths.tolist(), heights.tolist()):
        per_batch = max(1, _BATCH_CANDIDATES // (width * height))
        for start in range(first, last, per_batch):
            batches.append((slice(start, min(start + per_batch, last)), width, height))
    return order, batches
