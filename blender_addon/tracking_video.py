"""The tracking video at the model's size, written as PNGs. Pure numpy + Pillow: safe off Blender's main thread.

Rendered with `das_core.render.render_tracking` straight into the model's 720 x 480, letterboxed
with the project's one aspect policy (the reference image's framing too: `das_core.video.fit_frames`),
so what is sent, what is previewed and what `das render-tracking --fit` writes are the same frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from das_core.render import render_tracking
from das_core.tracks import Tracks
from das_core.video import write_png_dir

NUM_FRAMES = 49  # the released DaS checkpoint's length
WIDTH, HEIGHT = 720, 480  # and size


def render_tracking_video(tracks: Tracks, mode: str, directory: Path) -> tuple[np.ndarray, list[Path]]:
    """Render (letterboxed) and write the tracking video; returns (uint8 [49, 480, 720, 3], PNG paths)."""
    frames = render_tracking(tracks, mode, NUM_FRAMES, fit=(WIDTH, HEIGHT))
    return frames, write_png_dir(directory, frames)
