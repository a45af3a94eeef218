"""The window of frames a video model takes and makes: frame size, length and frame rate.

The one home of these numbers, for the CLI, the server, the batch tools and the add-on (this tier
runs inside Blender). A model with another window (Wan-Move: 832 x 480, 81 frames, 16 fps) gets
its own constant beside `DAS_WINDOW`.
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
