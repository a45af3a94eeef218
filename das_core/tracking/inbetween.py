"""In-between frames from exact motion: a model-rate video back to the scene's frame rate.

The model makes frames at a subset of the timeline (the model frames); the tracks hold every
timeline frame. For a timeline frame t between the generated frames a and b, every pixel of t is
traced to where its surface point is in a and in b, and the generated frames are sampled there:

- Pixels with a surface behind them: the meshes are drawn at frame t with each vertex's
  position in a and in b (pixels and depth, homogeneous, so perspective-correct interpolation is
  exact) as attributes, under the renderer's depth test (`render.fragments.nearest_surfaces`).
- Pixels with none (sky, empty background) move with the camera as points at infinity: the
  rotation-only homography K_a R_a R_t^T K_t^-1 takes them to a (and likewise to b).
- A source is dropped where the point is outside its frame or hidden there: for a surface point,
  when the depth buffer of that frame holds a nearer surface (by more than `DEPTH_TOLERANCE`,
  relative); for the background, when any surface is drawn there.
- The sources are sampled bilinearly and blended by time, weights (1 - s, s) with s = (t - a) /
  (b - a), renormalised when one is dropped. A pixel with neither source takes the nearer
  frame's value (in time; a on a tie) at its homography position, clamped to the frame: a guess.

Frames may be the tracks' size or a letterboxed fit of it (the model's 720 x 480, by the same
`Canvas` geometry the tracking video is drawn with); the bars are copied from the nearer frame.
Numpy only (it runs in Blender, on the server and in the CLI).

How, per frame: a surface's homogeneous position in a source, like the homography's, is an
affine function of the pixel of t, so each pixel's position there is three planes of its
surface (a triangle, or the background) evaluated and divided (`_map`, `_moving`). Pixels whose
surface stands still between t and every source (none of its corners moves; for the background,
no source's camera turns or zooms) skip that: each source is read at the pixel itself
(`_still`). Pixels whose surface stays put in the world while the camera moves (and the
background) need no planes: their position in a source is one 3 x 4 map of the camera's motion
applied to (column, row, 1, 1/z) (`_camera_map`, `_fixed`). The blend is integer arithmetic on packed pixels (`_bilinear`), made in bands of
rows on `_THREADS` threads.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from das_core.errors import DasError
from das_core.tracking.render.canvas import Canvas
from das_core.tracking.render.fragments import Surfaces, nearest_surfaces
from das_core.tracking.tracks import Tracks

__all__ = ["DEPTH_TOLERANCE", "InbetweenError", "Inbetweener"]

# A point counts as hidden in a source frame when that frame's nearest surface at its pixel is
# nearer than its own depth by more than this fraction (a grazing ground plane changes depth by
# about a percent per pixel).
DEPTH_TOLERANCE = 0.03
_THREADS = 2  # bands of rows made at once
# Pixels traced at once where a band takes one path throughout. Smaller blocks keep the
# temporaries in cache, but each numpy call must run long enough that passing the GIL between
# the bands' threads (at every call) costs little beside it.
_BLOCK_PIXELS = 86_400
# The blend sums each channel times integer weights that add to _ONE per pixel, in lanes of
# _LANE_BITS bits of one uint64 (255 * _ONE, rounded, fits in 21 bits): all three channels of
# a pixel in one gather and one multiply per sample.
_WEIGHT_BITS = 13
_ONE = 1 << _WEIGHT_BITS
_LANE_BITS = 21
# Per surface, how its pixels are traced (`Inbetweener._paths`).
_STILL, _FIXED, _MOVING = 0, 1, 2
_ROUNDING = sum(1 << (_WEIGHT_BITS - 1 + _LANE_BITS * channel) for channel in range(3))  # half a level each


@dataclass(frozen=True)
class _Frame:
    """What every band of an in-between frame reads (`Inbetweener._blend`): the `sources`, their
    `maps` (`Inbetweener._map`), `camera_maps` (`Inbetweener._camera_map`) and `time_weights`
    (`_time_weights`); per content pixel its surface (`owner`), 1/z and the depth test's
    `threshold`; per surface its `path` (`Inbetweener._paths`); and the `nearest` source in time."""

    sources: list[int]
    maps: list[np.ndarray]
    camera_maps: list[np.ndarray]
    time_weights: list[np.ndarray]
    owner: np.ndarray
    inverse_z: np.ndarray
    threshold: np.ndarray
    path: np.ndarray
    nearest: int


class InbetweenError(DasError):
    """Tracks or generated frames the in-betweener cannot use; the message names the problem."""


class Inbetweener:
    """Makes every timeline frame of `tracks` from the `generated` frames, uint8 [H, W, 3] keyed by
    timeline index (0 .. T - 1): `frame(t)`. Each generated frame's depth buffer is drawn, and
    the frame packed for the blend, once, when first needed."""

    def __init__(self, tracks: Tracks, generated: Mapping[int, np.ndarray]) -> None:
        if not isinstance(tracks, Tracks):
            raise InbetweenError(f"the in-betweener needs a Tracks object, got {type(tracks).__name__}")
        if tracks.faces is None or not len(tracks.faces):
            raise InbetweenError("the tracks have no faces: in-betweening needs meshes (export them from Blender)")
        self.tracks, self.faces = tracks, tracks.faces
        self.keys = np.array(sorted(_check_generated(generated, tracks.num_frames)), dtype=np.int64)
        self.frames = {int(k): np.asarray(generated[k]) for k in self.keys}
        height, width = self.frames[int(self.keys[0])].shape[:2]
        self.canvas = Canvas.fitting(tracks, (width, height))
        self._depth: dict[int, np.ndarray] = {}
        self._packed_frames: dict[int, np.ndarray] = {}
        # Every content pixel's column and row (float32, flat): where the planes are evaluated.
        rows, columns = np.indices((self.canvas.content_height, self.canvas.content_width), dtype=np.float32)
        self._columns, self._rows = columns.reshape(-1), rows.reshape(-1)
        # Threads for all bands of rows but the first; they start on first use and end with this
        # object (a new pool per frame costs about half a millisecond).
        self._pool = ThreadPoolExecutor(max(1, _THREADS - 1))

    def frame(self, t: int) -> np.ndarray:
        """Timeline frame `t` (module docstring): a generated frame as given, any other one made
        from the generated frames around it (only the nearer one before the first or after the
        last)."""
        if isinstance(t, bool) or int(t) != t or not 0 <= t < self.tracks.num_frames:
            raise InbetweenError(
                f"frame {t!r} is not a timeline frame of these tracks (0..{self.tracks.num_frames - 1})"
            )
        t = int(t)
        if t in self.frames:
            return self.frames[t].copy()
        after = int(np.searchsorted(self.keys, t))
        sources = [int(self.keys[i]) for i in (after - 1, after) if 0 <= i < len(self.keys)]
        if len(sources) == 2:
            s = (t - sources[0]) / (sources[1] - sources[0])
            weights = [1.0 - s, s]
        else:
            weights = [1.0]
        nearest = sources[int(np.argmax(weights))]  # a on a tie: argmax takes the first
        return self._blend(t, sources, weights, nearest)

    def _blend(self, t: int, sources: list[int], weights: list[float], nearest: int) -> np.ndarray:
        """Frame t from `sources` with time `weights` (the pixels' sum, renormalised per pixel)."""
        surfaces = self._surfaces(t, sources)
        camera_maps = [self._camera_map(t, a) for a in sources]
        frame = _Frame(
            sources,
            [self._map(k, surfaces, camera_map) for k, camera_map in enumerate(camera_maps)],
            [np.ascontiguousarray(camera_map, dtype=np.float32) for camera_map in camera_maps],
            _time_weights(weights),
            surfaces.owner,
            surfaces.inverse_z,
            surfaces.inverse_z * np.float32(1 + DEPTH_TOLERANCE),
            self._paths(t, sources, surfaces),
            nearest,
        )
        for a in sources:  # drawn and packed once, before the threads read them
            self._depth_buffer(a), self._packed(a)
        out = self.frames[nearest].copy()
        # Bands of rows, each on its own thread: numpy lets go of the GIL in its array loops.
        bands = list(itertools.pairwise(np.linspace(0, self.canvas.content_height, _THREADS + 1).astype(int).tolist()))
        done = [self._pool.submit(self._band, frame, first, last, out) for first, last in bands[1:]]
        self._band(frame, *bands[0], out)
        for future in done:
            future.result()
        return out

    def _band(self, frame: _Frame, first: int, last: int, out: np.ndarray) -> None:
        """Content rows `first` to `last` of the frame into `out`, the canvas frame."""
        width = self.canvas.content_width
        path = frame.path.take(frame.owner[first * width : last * width])
        if (path == _STILL).any():
            total, code = self._still(frame, first, last)
        else:
            total, code = np.empty(len(path), dtype=np.uint64), np.empty(len(path), dtype=np.uint8)
        for kind, trace in ((_FIXED, self._fixed), (_MOVING, self._moving)):
            on_path = path == kind
            if on_path.all():  # all the band's pixels: rows, no index
                rows = max(1, _BLOCK_PIXELS // width)
                for start in range(first, last, rows):
                    end = min(start + rows, last)
                    block = slice((start - first) * width, (end - first) * width)
                    total[block], code[block] = trace(frame, start, end, None)
            elif on_path.any():
                local = np.flatnonzero(on_path)
                total[local], code[local] = trace(frame, first, last, local + first * width)
        # Pixels seen in neither source: the nearer frame at the homography position.
        lost = np.flatnonzero(code == 0)
        if len(lost):
            total[lost] = self._lost(frame, lost + first * width)
        self._write(total, first, last, out)

    def _write(self, total: np.ndarray, first: int, last: int, out: np.ndarray) -> None:
        """The blend's sums `total` for content rows `first` to `last`, rounded, into `out`."""
        total += np.uint64(_ROUNDING)
        content = self._content(out)[first:last]
        for channel in range(3):
            shift = np.uint64(_WEIGHT_BITS + _LANE_BITS * channel)
            content[..., channel] = (total >> shift).reshape(content.shape[:2])

    def _still(self, frame: _Frame, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Content rows `first` to `last` as if every pixel's surface (or the background) stood
        still in every source: each source at the pixel itself, if seen there. Returns the
        blend's sums, uint64, and which sources see each pixel (bit k: source k), uint8, flat."""
        width = self.canvas.content_width
        threshold = frame.threshold[first * width : last * width].reshape(-1, width)
        code = np.zeros((last - first, width), dtype=np.uint8)
        for k, a in enumerate(frame.sources):
            code |= (self._depth_content(a)[first:last] <= threshold).view(np.uint8) << np.uint8(k)
        code = code.reshape(-1)
        # Most pixels are seen in every source: their weights are the same, the others' differ.
        everywhere = len(frame.time_weights[0]) - 1
        total = np.zeros((last - first, width), dtype=np.uint64)
        for k, a in enumerate(frame.sources):
            total += self._content(self._packed(a))[first:last] * np.uint64(frame.time_weights[k][everywhere])
        total = total.reshape(-1)
        partly = np.flatnonzero(code != everywhere)
        if len(partly):
            seen = code.take(partly)
            at = self._canvas_index(partly + first * width)
            total[partly] = sum(
                self._packed(a).take(at) * weights.astype(np.uint64).take(seen)
                for a, weights in zip(frame.sources, frame.time_weights)
            )
        return total, code

    def _moving(self, frame: _Frame, first: int, last: int, pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The content `pixels` (flat; None: rows `first` to `last`), each source where its map
        puts them: the blend's sums and which sources see them, as `_still`'s."""
        width = self.canvas.content_width
        at = slice(first * width, last * width) if pixels is None else pixels
        owner, x, y = frame.owner[at], self._columns[at], self._rows[at]
        located = []
        for a, table in zip(frame.sources, frame.maps):
            with np.errstate(divide="ignore", invalid="ignore"):
                u, v, z = (_plane(table[3 * i : 3 * i + 3], owner, x, y) for i in range(3))
            located.append(self._locate(a, u, v, z, frame.threshold[at]))
        return self._sum(frame, located)

    def _fixed(self, frame: _Frame, first: int, last: int, pixels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """`_moving` for pixels whose surface stays put in the world (or the background): each
        source's position is its `camera_maps` entry applied to (column, row, 1, 1/z)."""
        width = self.canvas.content_width
        if pixels is None:  # whole rows: the affine part is a sum of a row and a column term
            x: np.ndarray = np.arange(width, dtype=np.float32)
            y: np.ndarray = np.arange(first, last, dtype=np.float32)[:, None]
            at: slice | np.ndarray = slice(first * width, last * width)
            inverse_z = frame.inverse_z[at].reshape(last - first, width)
        else:
            x, y, at = self._columns.take(pixels), self._rows.take(pixels), pixels
            inverse_z = frame.inverse_z.take(pixels)
        located = []
        for a, matrix in zip(frame.sources, frame.camera_maps):
            u, v, z = (_affine(matrix[i], x, y, inverse_z).reshape(-1) for i in range(3))
            located.append(self._locate(a, u, v, z, frame.threshold[at]))
        return self._sum(frame, located)

    def _sum(
        self, frame: _Frame, located: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The blend's sums and which sources see each pixel (as `_still`'s) from each source's
        `_locate` result."""
        code = np.zeros(len(located[0][0]), dtype=np.uint8)
        for k, (_, _, _, seen) in enumerate(located):
            assert seen is not None
            code |= seen.view(np.uint8) << np.uint8(k)
        total = np.zeros(len(code), dtype=np.uint64)
        for a, weights, (index, fx, fy, _) in zip(frame.sources, frame.time_weights, located):
            _bilinear(self._packed(a), self.canvas.width, index, fx, fy, weights.take(code), total)
        return total, code

    def _lost(self, frame: _Frame, pixels: np.ndarray) -> np.ndarray:
        """The blend's sums for content `pixels` (flat) seen in no source: the nearer frame at
        their positions as points at infinity."""
        nearest = frame.nearest
        matrix = frame.camera_maps[frame.sources.index(nearest)]
        x, y = self._columns.take(pixels), self._rows.take(pixels)
        u, v, z = (_affine(matrix[i], x, y, None) for i in range(3))
        index, fx, fy, _ = self._locate(nearest, u, v, z, None)
        total = np.zeros(len(pixels), dtype=np.uint64)
        _bilinear(self._packed(nearest), self.canvas.width, index, fx, fy, np.float32(_ONE), total)
        return total

    def _surfaces(self, t: int, sources: list[int]) -> Surfaces:
        """Frame t drawn with each vertex's position in every source (`_homogeneous`) and, as
        the last two attributes (1 if so), whether it moves between t and any source in the
        image and in the world."""
        canvas, tracks = self.canvas, self.tracks
        here = self._homogeneous(t)
        there = [self._homogeneous(a) for a in sources]
        moved, wandered = np.zeros(len(here), dtype=bool), np.zeros(len(here), dtype=bool)
        for a, positions in zip(sources, there):
            moved |= (positions != here).any(axis=1)
            wandered |= (tracks.points[a] != tracks.points[t]).any(axis=1)
        return nearest_surfaces(
            tracks.points[t],
            tracks.world_to_camera[t],
            canvas.intrinsics[t],
            self.faces,
            canvas.content_width,
            canvas.content_height,
            np.concatenate([*there, moved[:, None], wandered[:, None]], axis=1),
        )

    def _map(self, k: int, surfaces: Surfaces, camera_map: np.ndarray) -> np.ndarray:
        """Where each surface of frame t (`surfaces`, drawn by `_surfaces`; k: the index of a
        source there) lies in that source, as planes of homogeneous canvas positions: float32
        [9, S], rows (value at pixel (0, 0), step per column, step per row) of X, Y and Z, where
        X / Z and Y / Z are the sampling position (canvas pixel centres at whole numbers) and
        Z > 0 in front of the source's camera; for a surface point, Z is also its depth there
        over its depth in t. Surface 0, none, moves as a point at infinity: the homography of
        `camera_map` (`_camera_map`)."""
        canvas = self.canvas
        x, y, z = (surfaces.planes[:, 1 + 3 * k + i] for i in range(3))
        table = np.stack([x + (canvas.left - 0.5) * z, y + (canvas.top - 0.5) * z, z], axis=1)
        table[0] = camera_map[:, [2, 0, 1]]  # a pixel (column, row): steps, then constant
        return np.ascontiguousarray(table.reshape(len(table), 9).T, dtype=np.float32)

    def _paths(self, t: int, sources: list[int], surfaces: Surfaces) -> np.ndarray:
        """Per surface of `surfaces` (`_surfaces`), how its pixels are traced, uint8: `_STILL`
        where it is where it is in frame t in every source (none of its corners moves; for the
        background, every source's camera turns and zooms as frame t's), else `_FIXED` where it
        stays put in the world (and the background), else `_MOVING`."""
        path = np.where(surfaces.planes[:, -1].any(axis=1), _MOVING, _FIXED).astype(np.uint8)
        path[~surfaces.planes[:, -2].any(axis=1)] = _STILL
        tracks, intrinsics = self.tracks, self.canvas.intrinsics
        still = all(
            np.array_equal(tracks.world_to_camera[a, :3, :3], tracks.world_to_camera[t, :3, :3])
            and np.array_equal(intrinsics[a], intrinsics[t])
            for a in sources
        )
        path[0] = _STILL if still else _FIXED
        return path

    def _homogeneous(self, a: int) -> np.ndarray:
        """Every vertex at frame a as K_a (R_a X + t_a): (u z, v z, z), content pixels, [N, 3]."""
        matrix = self.tracks.world_to_camera[a].astype(np.float64)
        camera = self.tracks.points[a].astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
        return camera @ self.canvas.intrinsics[a].astype(np.float64).T

    def _camera_map(self, t: int, a: int) -> np.ndarray:
        """Where a point fixed in the world, at pixel (column, row) of frame t's content with
        1/z there, lies in frame a's canvas (pixel centres at whole numbers): [3, 4] on (column,
        row, 1, 1/z), homogeneous with the third row its depth in a over its depth in t (positive
        in front of camera a). Its first three columns, the homography K_a R_a R_t^T K_t^-1 at
        the pixel's centre, are where a point at infinity (1/z = 0) lies."""
        canvas, cameras = self.canvas, self.tracks.world_to_camera
        rotation = cameras[a, :3, :3].astype(np.float64) @ cameras[t, :3, :3].astype(np.float64).T
        shift = cameras[a, :3, 3].astype(np.float64) - rotation @ cameras[t, :3, 3].astype(np.float64)
        intrinsics_t = canvas.intrinsics[t].astype(np.float64)
        intrinsics_a = canvas.intrinsics[a].astype(np.float64)
        to_canvas = np.array([[1, 0, canvas.left - 0.5], [0, 1, canvas.top - 0.5], [0, 0, 1]]) @ intrinsics_a
        centre = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        homography = to_canvas @ rotation @ _inverse(intrinsics_t) @ centre
        return np.concatenate([homography, (to_canvas @ shift)[:, None]], axis=1)

    def _locate(
        self, a: int, u: np.ndarray, v: np.ndarray, z: np.ndarray, threshold: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Where points at homogeneous canvas positions (`u`, `v`, `z`) of frame a (see `_map`),
        float32 [P] (overwritten), lie in it: (index of the canvas pixel left of and above the
        sampling position, clamped to the content; fractions to the next pixel in x and y;
        whether seen in a). Seen: inside a's content, in front of camera a, and not behind a
        surface drawn there: its depth in a times the 1/z drawn there is at most `threshold`
        [P] times its 1/z in frame t (1 + `DEPTH_TOLERANCE`; 0 on the background: nothing may
        be drawn). Without a threshold, `seen` is None and a point behind camera a samples the
        content's top left corner (the fallback's guess)."""
        canvas = self.canvas
        left, top = canvas.left, canvas.top
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.divide(1, z, dtype=np.float32)
            u *= scale
            v *= scale
        seen = None
        if threshold is not None:
            seen = z > 0
            seen &= (u >= left - 0.5) & (u < left + canvas.content_width - 0.5)
            seen &= (v >= top - 0.5) & (v < top + canvas.content_height - 0.5)
        else:
            behind = z <= 0
            u[behind] = v[behind] = np.nan
        # NaN (behind the camera, or on its plane) clamps to the corner: fmax and fmin skip it.
        np.fmin(np.fmax(u, left, out=u), max(left, left + canvas.content_width - 1.001), out=u)
        np.fmin(np.fmax(v, top, out=v), max(top, top + canvas.content_height - 1.001), out=v)
        column, row = np.floor(u), np.floor(v)
        u -= column
        v -= row
        # Flat pixel indices as floats, exact in float32 below 2 ** 24 pixels: one conversion each.
        if canvas.width * canvas.height > 1 << 24:
            row = row.astype(np.float64)
        row *= canvas.width
        row += column
        index = row.astype(np.intp)
        if seen is not None:
            # The pixel holding the point is the nearest of the four sampled.
            row += u >= 0.5
            row += (v >= 0.5) * row.dtype.type(canvas.width)
            z *= self._depth_buffer(a).take(row.astype(np.intp))
            seen &= z <= threshold
        return index, u, v, seen

    def _depth_buffer(self, a: int) -> np.ndarray:
        """1/z of the nearest surface per canvas pixel of frame a (0: none, and in the bars),
        float32 [height * width], drawn once."""
        if a not in self._depth:
            tracks, canvas = self.tracks, self.canvas
            drawn = nearest_surfaces(
                tracks.points[a],
                tracks.world_to_camera[a],
                canvas.intrinsics[a],
                self.faces,
                canvas.content_width,
                canvas.content_height,
                np.zeros((tracks.num_points, 0)),
            ).inverse_z
            buffer = np.zeros((canvas.height, canvas.width), dtype=np.float32)
            self._content(buffer)[:] = drawn.reshape(canvas.content_height, canvas.content_width)
            self._depth[a] = buffer.reshape(-1)
        return self._depth[a]

    def _depth_content(self, a: int) -> np.ndarray:
        """`_depth_buffer(a)` over the content rectangle, [content height, content width]."""
        return self._content(self._depth_buffer(a).reshape(self.canvas.height, self.canvas.width))

    def _packed(self, a: int) -> np.ndarray:
        """Generated frame a as one uint64 per canvas pixel, made once: R, G and B in the low
        bits of lanes `_LANE_BITS` apart, room for `_bilinear` to sum them with integer weights."""
        if a not in self._packed_frames:
            pixels = self.frames[a].reshape(-1, 3).astype(np.uint64)
            packed = (
                pixels[:, 0] | (pixels[:, 1] << np.uint64(_LANE_BITS)) | (pixels[:, 2] << np.uint64(2 * _LANE_BITS))
            )
            self._packed_frames[a] = packed
        return self._packed_frames[a]

    def _canvas_index(self, pixels: np.ndarray) -> np.ndarray:
        """Flat content `pixels` as flat canvas pixels."""
        canvas = self.canvas
        rows = pixels // canvas.content_width
        return pixels + rows * (canvas.width - canvas.content_width) + (canvas.top * canvas.width + canvas.left)

    def _content(self, image: np.ndarray) -> np.ndarray:
        """The content rectangle of a canvas-sized `image` [H, W, ...] or flat [H * W] (a view)."""
        canvas = self.canvas
        image = image.reshape(canvas.height, canvas.width, *image.shape[2:]) if image.ndim == 1 else image
        return image[canvas.top : canvas.top + canvas.content_height, canvas.left : canvas.left + canvas.content_width]


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 3 x 3 matrix by its adjugate: `np.linalg.inv` wakes OpenBLAS's threads,
    which then spin on the other core for milliseconds."""
    adjugate = np.stack(
        [np.cross(matrix[1], matrix[2]), np.cross(matrix[2], matrix[0]), np.cross(matrix[0], matrix[1])]
    )
    return adjugate.T / (matrix[0] * adjugate[0]).sum()


def _plane(rows: np.ndarray, owner: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Affine quantities `rows` [3, S] (value at pixel (0, 0), step per column, step per row) of
    the surfaces `owner` [P] at pixels (`x`, `y`) [P]: float32 [P]."""
    value = rows[1].take(owner)
    value *= x
    step = rows[2].take(owner)
    step *= y
    value += step
    value += rows[0].take(owner)
    return value


def _affine(row: np.ndarray, x: np.ndarray, y: np.ndarray, inverse_z: np.ndarray | None) -> np.ndarray:
    """`row` [4] (per column, per row, constant, per 1/z; a `_camera_map` row) at pixels
    (`x`, `y`) with 1/z `inverse_z` (None: 0), float32, broadcast together."""
    value = row[1] * y
    value += row[2]
    if inverse_z is None:
        return value + row[0] * x
    total = inverse_z * row[3]
    total += value
    total += row[0] * x
    return total


def _time_weights(weights: list[float]) -> list[np.ndarray]:
    """Per source, its integer weight (of `_ONE`) for each code of which sources see a pixel
    (bit k: source k): the time `weights` of those seen, renormalised; 0 where none is seen.
    Float32 [2 ** len(weights)], whole numbers."""
    table = np.zeros((len(weights), 1 << len(weights)), dtype=np.float32)
    for code in range(1, 1 << len(weights)):
        seen = [k for k in range(len(weights)) if code >> k & 1]
        total = sum(weights[k] for k in seen)
        for k in seen[:-1]:
            table[k, code] = round(_ONE * weights[k] / total)
        table[seen[-1], code] = _ONE - table[seen[:-1], code].sum()
    return list(table)


def _bilinear(
    packed: np.ndarray,
    stride: int,
    index: np.ndarray,
    fx: np.ndarray,
    fy: np.ndarray,
    weight: np.ndarray | np.float32,
    total: np.ndarray,
) -> None:
    """`packed` frame pixels (`Inbetweener._packed`, rows of `stride`) sampled bilinearly at
    `index` (left of and above the position) plus fractions (`fx`, `fy`), times `weight` (whole
    numbers up to `_ONE`), added to `total`, uint64 [P]: each lane the channel times its weight. Each corner's
    weight is rounded to a whole number, so a lane's sum of samples whose weights add to `_ONE`
    stays within a few `_ONE`-ths of a level and below 2 ** `_LANE_BITS`."""
    bottom = fy * weight
    top = weight - bottom
    top_right = top * fx
    top -= top_right
    bottom_right = bottom * fx
    bottom -= bottom_right
    for offset, corner in ((0, top), (1, top_right), (stride, bottom), (stride + 1, bottom_right)):
        total += packed[offset:].take(index) * np.rint(corner, out=corner).astype(np.uint32)


def _check_generated(generated: Mapping[int, np.ndarray], num_frames: int) -> list[int]:
    """The timeline indices of `generated`, checked: in range, frames uint8 [H, W, 3] of one size."""
    if not isinstance(generated, Mapping) or not generated:
        raise InbetweenError("no generated frames: give at least one, as {timeline index: uint8 [H, W, 3] frame}")
    shape = None
    for key, frame in generated.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < num_frames:
            raise InbetweenError(
                f"generated frame key {key!r} is not a timeline index of the tracks (0..{num_frames - 1})"
            )
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 2:
            raise InbetweenError(
                f"generated frame {key} must be uint8 [H, W, 3] (RGB, at least 2 x 2), got {frame.dtype} {list(frame.shape)}"
            )
        if shape is not None and frame.shape != shape:
            raise InbetweenError(f"generated frame {key} is {list(frame.shape)}, others {list(shape)}: give one size")
        shape = frame.shape
    return [int(key) for key in generated]
