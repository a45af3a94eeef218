"""Headless scene from one picture: image + depth to a .blend, in a Blender process of its own.

The add-on's `blender_addon.image_scene.build_image_scene` does the work, run by
`image_scene_in_blender.py` the way `blend_export` runs the exporter (this Python's bpy, or a
Blender executable). The depth travels as a temporary .npy, so the caller may get it from a file
or from a server before Blender starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW
from das_core.workflow.blend_export import run_in_blender

_SCRIPT = Path(__file__).with_name("image_scene_in_blender.py")


def build_image_blend(
    image: str | os.PathLike,
    depth: np.ndarray,
    output: str | os.PathLike,
    *,
    intrinsics: np.ndarray,
    metric: bool = True,
    step: int = 4,
    edge: float = 0.08,
    split: bool = True,
    frames: int = DAS_WINDOW.frames,
    motion: str | None = None,
    blender: str | os.PathLike | None = None,
) -> Path:
    """Save to `output` a scene of `image`'s proxy (depth [H, W] z distances), its camera, the picture as reference.

    `motion` (a DaS camera-motion string) keys the camera over `frames` frames. Raises `DasError`
    for a bad depth map or motion string (from Blender, naming the problem) or a Blender failure.
    """
    image, output = Path(image).resolve(), Path(output).resolve()
    if frames < 1:
        raise DasError(f"frames must be 1 or more, got {frames}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="das-image-scene-") as folder:
        depth_path = Path(folder) / "depth.npy"
        np.save(depth_path, np.asarray(depth, dtype=np.float32))
        args = {
            "image": str(image),
            "depth": str(depth_path),
            "output": str(output),
            "intrinsics": np.asarray(intrinsics, dtype=np.float64).tolist(),
            "metric": bool(metric),
            "step": int(step),
            "edge": float(edge),
            "split": bool(split),
            "frames": int(frames),
            "motion": motion,
        }
        output.unlink(missing_ok=True)
        run_in_blender(_SCRIPT, args, blender=blender, what=f"build a scene from {image.name}", output=output)
    return output
