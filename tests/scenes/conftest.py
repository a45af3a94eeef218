"""Small shot inputs for batch tests: a real tracks file and a real image, cheap to render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from das_core.tracking.tracks import Tracks


@pytest.fixture
def small_shot(tmp_path: Path) -> tuple[Path, Path]:
    """(tracks.npz, reference.png): a square of two triangles sliding right, seen by a 96x64 camera."""
    frames = 49
    square = np.array([[-1, -1, 4], [1, -1, 4], [1, 1, 4], [-1, 1, 4]], dtype=np.float32)
    shift = np.zeros((frames, 1, 3), dtype=np.float32)
    shift[:, 0, 0] = np.linspace(0.0, 0.8, frames)
    intrinsics = np.array([[80, 0, 48], [0, 80, 32], [0, 0, 1]], dtype=np.float32)
    tracks = Tracks(
        points=square[None] + shift,
        world_to_camera=np.repeat(np.eye(4, dtype=np.float32)[None], frames, axis=0),
        intrinsics=np.repeat(intrinsics[None], frames, axis=0),
        width=96,
        height=64,
        faces=np.array([[0, 1, 2], [0, 2, 3]]),
    )
    tracks_path, image_path = tmp_path / "square.npz", tmp_path / "square.png"
    tracks.save(tracks_path)
    gradient = np.linspace(0, 255, 96, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(gradient, (64, 1))] * 3, axis=-1)).save(image_path)
    return tracks_path, image_path
