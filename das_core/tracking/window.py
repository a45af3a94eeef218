"""The window of frames a video model takes and makes: frame size, length and frame rate.

The one home of these numbers, for the CLI, the server, the batch tools and the add-on (this tier
runs inside Blender). Each model has its own constant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelWindow:
    """`frames` frames of `width` x `height` pixels, played at `fps`."""

    width: int
    height: int
    frames: int
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height): the order `fit=` and `fit_frames` take."""
        return (self.width, self.height)


# The released DaS checkpoint takes only this size and length; the reference exports at 8 fps.
DAS_WINDOW = ModelWindow(width=720, height=480, frames=49, fps=8.0)
# Wan-Move (Wan2.1-I2V-14B-480P): the 480p size, the 81 frames its mask is built for, its sample_fps.
WAN_MOVE_WINDOW = ModelWindow(width=832, height=480, frames=81, fps=16.0)
