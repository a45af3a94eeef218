"""The add-on's tracking video is exactly what `das render-tracking --fit` makes from the add-on's exported file.

The shot is one window whose model frames are all of its frames (49 frames at DaS's 8 fps), as
`das render-tracking` samples the tracks evenly and knows nothing of shots at the scene's frame rate.
"""

import subprocess
import sys

import bpy
import numpy as np
import pytest
from blender_scenes import build_test_scene

from das_core.tracking.video import read_video


@pytest.mark.parametrize("mode", ["mesh", "points"])
def test_preview_equals_das_render_tracking(factory_scene, addon, tmp_path, mode):
    scene = factory_scene
    build_test_scene(scene, frame_start=1, frame_end=49)
    scene.render.fps, scene.render.fps_base = 8, 1.0
    scene.das.output_dir = str(tmp_path)
    scene.das.tracking_mode = mode
    assert bpy.ops.das.preview_tracking(wait=True) == {"FINISHED"}
    (folder,) = tmp_path.glob("preview-*")

    result = subprocess.run(
        [sys.executable, "-m", "das_core", "render-tracking", str(folder / "tracks.npz"), "--mode", mode, "--fit",
         "-o", str(tmp_path / "cli.mp4"), "--png-dir", str(tmp_path / "cli"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    ours, cli = read_video(folder / "tracking"), read_video(tmp_path / "cli")
    assert ours.shape == (49, 480, 720, 3)
    np.testing.assert_array_equal(ours, cli)
    assert ours.max() > 100 and (ours[0] != ours[-1]).any(), "a real, moving tracking video"
