"""Small shot inputs for batch and whole-shot tests: a real tracks file and a real image, cheap to render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from das_core.tracking.tracks import Tracks


def square_tracks(frames: int = 49, fps: float = 24.0, faces: bool = True) -> Tracks:
    """A square of two triangles sliding right over `frames` frames at `fps`, seen by a 96x64 camera."""
    square = np.array([[-1, -1, 4], [1, -1, 4], [1, 1, 4], [-1, 1, 4]], dtype=np.float32)
    shift = np.zeros((frames, 1, 3), dtype=np.float32)
    shift[:, 0, 0] = np.linspace(0.0, 0.8, frames)
    intrinsics = np.array([[80, 0, 48], [0, 80, 32], [0, 0, 1]], dtype=np.float32)
    return Tracks(
        points=square[None] + shift,
        world_to_camera=np.repeat(np.eye(4, dtype=np.float32)[None], frames, axis=0),
        intrinsics=np.repeat(intrinsics[None], frames, axis=0),
        width=96,
        height=64,
        faces=np.array([[0, 1, 2], [0, 2, 3]]) if faces else None,
        fps=fps,
    )


def gradient_image(path: Path) -> Path:
    """A 96x64 grey gradient PNG at `path`."""
    gradient = np.linspace(0, 255, 96, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(gradient, (64, 1))] * 3, axis=-1)).save(path)
    return path


@pytest.fixture
def small_shot(tmp_path: Path) -> tuple[Path, Path]:
    """(tracks.npz, reference.png): `square_tracks()` (49 frames at 24 fps) and a gradient image."""
    tracks_path = tmp_path / "square.npz"
    square_tracks().save(tracks_path)
    return tracks_path, gradient_image(tmp_path / "square.png")
