"""The tracking video ("the shader"): Tracks in, uint8 frames [T, H, W, 3] out, as DaS encodes motion.

`das_core/tracking/ENCODING.md` states the encoding this reproduces. Every point keeps the colour
it had at the first frame (see `das_core.tracking.colors`) and is drawn where it is in each frame,
on black:

- mesh mode (`mesh`) draws the surfaces; nearest surface wins (z-buffer); no back-face culling;
  triangles that cross the camera plane are clipped at `NEAR_PLANE` in camera space (never
  projected from behind). Its `encoding` (`shading`) is "exact" by default: each vertex's
  first-frame position is interpolated perspective-correctly and every pixel encoded from its own
  surface point. "reference" renders as the reference's Blender script does: per-vertex colours
  decoded from sRGB to linear light, interpolated perspective-correctly across each triangle,
  encoded back to sRGB.
- points mode (`points`) draws filled rectangles far-to-near (painter's order), in the
  SpatialTracker or CoTracker style of the reference.

The output is the tracks' width x height, or, with `fit=(width, height)` (the model's 720 x 480),
the tracking video drawn straight into the letterboxed canvas of the project's one aspect policy
(`das_core.tracking.video.letterbox_rect`, shared with `fit_frames`, which fits the reference image): the
camera's image is scaled into the centred content rectangle, and the colours name positions in
the CANVAS (R = x / canvas width, G = y / canvas height), because the model reads a first-frame
colour as that point's position in the frame it is given. A point (a vertex, in the reference
encoding) outside the camera's frame at the first frame stays black (the camera did not see it),
and the bars are black in every frame (the camera never sees there). B, inverse distance, does not
depend on the frame.

Numpy only (it runs inside Blender). The modules: `canvas` (the output frame, frames drawn in
chunks on threads), `mesh` (camera space, near-plane clipping), `triangles` (triangle set-up),
`raster` (the vectorised z-buffer rasteriser), `shading` (mesh mode's two encodings), `points`
(points mode), `windows` (batching pixel windows by size, for both modes).
"""

from __future__ import annotations

import numpy as np

from das_core.tracking.render.canvas import Canvas, RenderError
from das_core.tracking.render.mesh import NEAR_PLANE, render_mesh
from das_core.tracking.render.points import render_points
from das_core.tracking.render.shading import ENCODINGS
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import sample_indices

__all__ = ["ENCODINGS", "MODES", "NEAR_PLANE", "POINT_STYLES", "RenderError", "render_tracking"]

MODES = ("mesh", "points")
POINT_STYLES = ("spatialtracker", "cotracker")


def render_tracking(
    tracks: Tracks,
    mode: str = "mesh",
    num_frames: int = 49,
    *,
    fit: tuple[int, int] | None = None,
    point_style: str = "spatialtracker",
    encoding: str = "exact",
    progress: bool = False,
) -> np.ndarray:
    """Render the DaS tracking video of `tracks`: uint8 [num_frames, height, width, 3].

    The T source frames are sampled to `num_frames` with `video.sample_indices` (evenly spaced,
    first and last included). Colours come from the first source frame. `mode` is "mesh" (needs
    `tracks.faces`) or "points" (every tracked point as a rectangle; `point_style` picks the
    reference's "spatialtracker" or "cotracker" look). `encoding` is mesh mode's: "exact" (each
    pixel names its own surface point's first-frame position) or "reference" (per-vertex colours
    interpolated, as the DaS reference renders); points mode has one colour per point either way.
    The frames are the tracks' width x height, or with `fit=(width, height)` that size, drawn
    directly into the letterboxed canvas (module docstring: colours are canvas positions, bars
    black); a fit equal to the tracks' size changes nothing. `progress` shows a tqdm bar over frames.
    """
    if mode not in MODES:
        raise RenderError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if point_style not in POINT_STYLES:
        raise RenderError(f"point_style must be one of {', '.join(POINT_STYLES)}, got {point_style!r}")
    if encoding not in ENCODINGS:
        raise RenderError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if not isinstance(tracks, Tracks):
        raise RenderError(f"render_tracking needs a Tracks object, got {type(tracks).__name__}")
    faces = _mesh_faces(tracks) if mode == "mesh" else None  # None: points mode
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
        raise RenderError(f"num_frames must be a positive whole number, got {num_frames!r}")
    canvas = Canvas.fitting(tracks, fit)

    # Each distinct source frame is drawn once; repeats (fewer source frames than asked) are copies.
    sources, where = np.unique(sample_indices(tracks.num_frames, int(num_frames)), return_inverse=True)
    if faces is not None:
        frames = render_mesh(tracks, faces, canvas, sources, encoding, progress)
    else:
        frames = render_points(tracks, canvas, sources, point_style, progress)
    frames = canvas.place(frames)
    return frames if len(sources) == num_frames else frames[where.reshape(-1)]


def _mesh_faces(tracks: Tracks) -> np.ndarray:
    """The faces mesh mode draws, or a RenderError when `tracks` have none."""
    if tracks.faces is None or len(tracks.faces) == 0:
        raise RenderError("mesh mode needs faces, but these tracks have none; render them with mode 'points'")
    return tracks.faces
