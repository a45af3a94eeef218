"""A model's control from a tracks file, at the model's window: the DaS tracking video or Wan-Move's point tracks.

`prepare_control(tracks, window)` makes what a server's backend follows (its `info` names the window):
for `TRACKING_VIDEO` the letterboxed tracking video, for `POINT_TRACKS` grid points tracked with
visibility (`point_tracks`). Both are sampled to the window's frames over the tracks' whole range, so
a strip of either spans the same scene frames. Numpy and Pillow only (it runs inside Blender).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from das_core.errors import DasError
from das_core.tracking.point_tracks import PointTracks, draw_point_tracks, point_tracks
from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import POINT_TRACKS, TRACKING_VIDEO, ModelWindow

# What each control's model samples with unless told otherwise: (steps, guidance).
SAMPLING_DEFAULTS = {TRACKING_VIDEO: (50, 6.0), POINT_TRACKS: (40, 5.0)}


@dataclass(frozen=True)
class Control:
    """One job's control for `window`: `tracking` (uint8 [T, H, W, 3]) or `points`, whichever it follows."""

    window: ModelWindow
    tracking: np.ndarray | None = None
    points: PointTracks | None = None

    def job_fields(self) -> dict:
        """The `JobRequest` fields that carry it: `tracking`, or `point_tracks` and `visibility`."""
        if self.points is not None:
            return {"point_tracks": self.points.xy, "visibility": self.points.visible}
        return {"tracking": self.tracking}

    def preview(self, background: np.ndarray | None = None) -> np.ndarray:
        """Frames to look at, uint8 [T, H, W, 3]: the tracking video, or the point tracks drawn on
        `background` (an image of the window's size) or on black."""
        if self.points is not None:
            return draw_point_tracks(self.points, background)
        assert self.tracking is not None  # one of the two is always set by prepare_control
        return self.tracking


def prepare_control(tracks: Tracks, window: ModelWindow, mode: str | None = None, *, progress: bool = False) -> Control:
    """The control `window` names, from `tracks`. `mode` is the tracking video's (mesh or points; default:
    mesh when the tracks have faces); point tracks need faces."""
    if window.control == TRACKING_VIDEO:
        mode = mode or ("mesh" if tracks.faces is not None and len(tracks.faces) else "points")
        return Control(
            window, tracking=render_tracking(tracks, mode, window.frames, fit=window.size, progress=progress)
        )
    if window.control == POINT_TRACKS:
        return Control(window, points=point_tracks(tracks, window.frames, window.size, progress=progress))
    raise DasError(
        f"the server's model follows a control named {window.control!r}, which this das does not know; "
        "install the das version the server runs"
    )


def sampling_defaults(window: ModelWindow) -> tuple[int, float]:
    """(steps, guidance) the model of `window` is sampled with by default."""
    return SAMPLING_DEFAULTS.get(window.control, SAMPLING_DEFAULTS[TRACKING_VIDEO])
