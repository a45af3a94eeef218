"""The control's frames as PNGs (the tracking video, or the point tracks drawn). Pillow: safe off Blender's main thread.

The frames come from `das_core.tracking.control.prepare_control` at the model's size, letterboxed with the
project's one aspect policy (the reference image's framing too: `das_core.tracking.video.fit_frames`), so
what is sent, what is previewed and what `das render-tracking --fit` writes are the same frames. Making and
writing are separate steps so a job can send its control before writing it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from das_core.tracking.video import write_png_dir


def write_tracking_video(frames: np.ndarray, directory: Path) -> list[Path]:
    """Write the frames losslessly as `directory`/frame_00000.png ...; returns the paths."""
    return write_png_dir(directory, frames)
