"""The window of frames a video model takes and makes: frame size, length, frame rate, and the control it follows.

The one home of these numbers, for the CLI, the server, the batch tools and the add-on (this tier
runs inside Blender). Each model has its own constant.
"""

from __future__ import annotations

from dataclasses import dataclass

# The controls a model follows: DaS a tracking video (colours name first-frame positions), Wan-Move
# 2D point tracks with visibility. The names are the protocol's (`info` and `submit`).
TRACKING_VIDEO = "das-tracking-video"
POINT_TRACKS = "point-tracks"
CONTROLS = (TRACKING_VIDEO, POINT_TRACKS)


@dataclass(frozen=True)
class ModelWindow:
    """`frames` frames of `width` x `height` pixels, played at `fps`, following a `control` (one of CONTROLS)."""

    width: int
    height: int
    frames: int
    fps: float
    control: str = TRACKING_VIDEO

    @property
    def size(self) -> tuple[int, int]:
        """(width, height): the order `fit=` and `fit_frames` take."""
        return (self.width, self.height)


# The released DaS checkpoint takes only this size and length; the reference exports at 8 fps.
DAS_WINDOW = ModelWindow(width=720, height=480, frames=49, fps=8.0)
# Wan-Move (Wan2.1-I2V-14B-480P): the 480p size, the 81 frames its mask is built for, its sample_fps.
WAN_MOVE_WINDOW = ModelWindow(width=832, height=480, frames=81, fps=16.0, control=POINT_TRACKS)
