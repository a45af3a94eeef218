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
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from das_core.errors import DasError
from das_core.tracking.render.canvas import Canvas
from das_core.tracking.render.fragments import nearest_surfaces
from das_core.tracking.tracks import Tracks

__all__ = ["DEPTH_TOLERANCE", "InbetweenError", "Inbetweener"]

# A point counts as hidden in a source frame when that frame's nearest surface at its pixel is
# nearer than its own depth by more than this fraction (a grazing ground plane changes depth by
# about a percent per pixel).
DEPTH_TOLERANCE = 0.03


class InbetweenError(DasError):
    """Tracks or generated frames the in-betweener cannot use; the message names the problem."""


class Inbetweener:
    """Makes every timeline frame of `tracks` from the `generated` frames, uint8 [H, W, 3] keyed by
    timeline index (0 .. T - 1): `frame(t)`. Each generated frame's depth buffer is drawn once,
    when first needed."""

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
        self._float: dict[int, np.ndarray] = {}

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
        canvas = self.canvas
        width, height = canvas.content_width, canvas.content_height
        tracks = self.tracks
        surfaces = nearest_surfaces(
            tracks.points[t],
            tracks.world_to_camera[t],
            canvas.intrinsics[t],
            self.faces,
            width,
            height,
            np.concatenate([self._homogeneous(a) for a in sources], axis=1),
        )
        background = np.flatnonzero(surfaces.inverse_z == 0)
        total = np.zeros((width * height, 3))
        weight_sum = np.zeros(width * height)
        fallback: np.ndarray | None = None
        for k, (a, weight) in enumerate(zip(sources, weights)):
            u = np.empty(width * height)
            v = np.empty(width * height)
            point = surfaces.values[:, 3 * k : 3 * k + 3]
            with np.errstate(divide="ignore", invalid="ignore"):
                u[surfaces.covered] = point[:, 0] / point[:, 2]
                v[surfaces.covered] = point[:, 1] / point[:, 2]
            u[background], v[background] = self._homography(t, a, background)
            depth = np.full(width * height, -1.0)  # background: no surface may be drawn there
            depth[surfaces.covered] = point[:, 2]
            seen = self._seen(a, u, v, depth)
            colour = self._sample(a, u, v)
            total += colour * (weight * seen)[:, None]
            weight_sum += weight * seen
            if a == nearest:
                fallback = colour
        assert fallback is not None
        # Pixels seen in neither source: the nearer frame at the homography position.
        lost = np.flatnonzero(weight_sum == 0)
        lost_covered = lost[surfaces.inverse_z.take(lost) > 0]
        if len(lost_covered):
            u, v = self._homography(t, nearest, lost_covered)
            fallback[lost_covered] = self._sample(nearest, u, v)
        with np.errstate(invalid="ignore", divide="ignore"):
            content = np.where(weight_sum[:, None] > 0, total / weight_sum[:, None], fallback)
        out = self.frames[nearest].copy()
        out[canvas.top : canvas.top + height, canvas.left : canvas.left + width] = (
            np.clip(content + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)
        )
        return out

    def _homogeneous(self, a: int) -> np.ndarray:
        """Every vertex at frame a as K_a (R_a X + t_a): (u z, v z, z), content pixels, [N, 3]."""
        matrix = self.tracks.world_to_camera[a].astype(np.float64)
        camera = self.tracks.points[a].astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
        return camera @ self.canvas.intrinsics[a].astype(np.float64).T

    def _homography(self, t: int, a: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the flat content pixels `pixels` of frame t lie in frame a as points at infinity:
        K_a R_a R_t^T K_t^-1 applied to their centres."""
        width = self.canvas.content_width
        rotation_t = self.tracks.world_to_camera[t, :3, :3].astype(np.float64)
        rotation_a = self.tracks.world_to_camera[a, :3, :3].astype(np.float64)
        intrinsics_t = self.canvas.intrinsics[t].astype(np.float64)
        intrinsics_a = self.canvas.intrinsics[a].astype(np.float64)
        homography = intrinsics_a @ rotation_a @ rotation_t.T @ np.linalg.inv(intrinsics_t)
        x, y = pixels % width + 0.5, pixels // width + 0.5
        h = homography
        with np.errstate(divide="ignore", invalid="ignore"):
            w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
            w = np.where(w > 0, w, np.nan)  # behind camera a: nowhere in its frame
            return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w

    def _seen(self, a: int, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Whether each point (content pixel position `u`, `v` in frame a, its depth there; < 0 for
        the background) is inside frame a and not behind a surface drawn there."""
        width, height = self.canvas.content_width, self.canvas.content_height
        with np.errstate(invalid="ignore"):
            inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
        pixel = np.zeros(len(u), dtype=np.int64)
        pixel[inside] = v[inside].astype(np.int64) * width + u[inside].astype(np.int64)
        buffer = self._depth_buffer(a).take(pixel)
        # Background: seen where nothing is drawn; a surface point: where nothing is much nearer.
        return inside & np.where(depth < 0, buffer == 0, depth * buffer <= 1 + DEPTH_TOLERANCE)

    def _depth_buffer(self, a: int) -> np.ndarray:
        """1/z of the nearest surface per content pixel of frame a (0: none), drawn once."""
        if a not in self._depth:
            tracks, canvas = self.tracks, self.canvas
            self._depth[a] = nearest_surfaces(
                tracks.points[a],
                tracks.world_to_camera[a],
                canvas.intrinsics[a],
                self.faces,
                canvas.content_width,
                canvas.content_height,
                np.zeros((tracks.num_points, 0)),
            ).inverse_z
        return self._depth[a]

    def _sample(self, a: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Generated frame a sampled bilinearly at content positions (`u`, `v`) [P] (clamped to
        the content rectangle; NaN reads as its corner): float32 [P, 3]."""
        canvas = self.canvas
        planes = self._planes(a)
        stride = planes.shape[1] // self.frames[a].shape[0]
        x = np.nan_to_num(u, nan=0.0).astype(np.float32)
        y = np.nan_to_num(v, nan=0.0).astype(np.float32)
        x += canvas.left - 0.5
        y += canvas.top - 0.5
        np.clip(x, canvas.left, max(canvas.left, canvas.left + canvas.content_width - 1.001), out=x)
        np.clip(y, canvas.top, max(canvas.top, canvas.top + canvas.content_height - 1.001), out=y)
        x0, y0 = x.astype(np.int32), y.astype(np.int32)
        fx, fy = x - x0, y - y0
        index = y0 * stride + x0
        # Each planar channel gathered at the four corners: 1-D takes are the fast ones.
        weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
        offsets = (0, 1, stride, stride + 1)
        corners = [index + offset for offset in offsets]
        out = np.zeros((3, len(index)), dtype=np.float32)
        for channel, plane in enumerate(planes):
            for weight, corner in zip(weights, corners):
                out[channel] += plane.take(corner) * weight
        return out.T

    def _planes(self, a: int) -> np.ndarray:
        """Generated frame a as float32 planes [3, H * W], made once."""
        if a not in self._float:
            self._float[a] = np.ascontiguousarray(self.frames[a].reshape(-1, 3).T, dtype=np.float32)
        return self._float[a]


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
