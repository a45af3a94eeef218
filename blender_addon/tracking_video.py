"""The tracking video at the model's size, and its PNGs. Pure numpy + Pillow: safe off Blender's main thread.

Rendered with `das_core.tracking.render.render_tracking` straight into the model's size (`DAS_WINDOW`), letterboxed
with the project's one aspect policy (the reference image's framing too: `das_core.tracking.video.fit_frames`),
so what is sent, what is previewed and what `das render-tracking --fit` writes are the same frames.
Rendering and writing are separate steps so a job can send its frames before writing them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import write_png_dir
from das_core.tracking.window import DAS_WINDOW


def render_tracking_frames(tracks: Tracks, mode: str) -> np.ndarray:
    """Render the letterboxed tracking video: uint8 [frames, height, width, 3] of `DAS_WINDOW`."""
    return render_tracking(tracks, mode, DAS_WINDOW.frames, fit=DAS_WINDOW.size)


def write_tracking_video(frames: np.ndarray, directory: Path) -> list[Path]:
    """Write the frames losslessly as `directory`/frame_00000.png ...; returns the paths."""
    return write_png_dir(directory, frames)
