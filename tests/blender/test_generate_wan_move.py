"""Generate against a tiny Wan-Move server: the add-on asks what the server runs and sends point tracks."""

import time
from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_scenes import build_test_scene

from blender_addon.sequencer import strip_collection, strip_span
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW
from das_core.workflow.local_server import LocalServer


def test_generate_on_a_wan_move_server_sends_point_tracks(factory_scene, addon, tmp_path):
    pytest.importorskip("torch")
    scene = factory_scene
    # 121 frames at 24 fps: 81 model frames at 16 fps, one whole window (a server samples a shorter control
    # up to its window and returns a frame per window frame, not one per model frame of the shot).
    build_test_scene(scene, frame_start=11, frame_end=131)
    scene.das.prompt = "a bending column in a stone hall"
    scene.das.reference = "WORKBENCH"
    scene.das.output_dir = str(tmp_path / "cache")
    scene.das.steps = 2
    from blender_addon import jobs, server_info

    with LocalServer("tiny", tmp_path / "server", extra_args=("--model", "wan-move")) as server:
        scene.das.server = server.address
        assert server.address not in server_info.KNOWN  # no "Ask server": Generate asks before it renders the reference
        assert bpy.ops.das.generate(wait=True) == {"FINISHED"}
        job = jobs.latest()
        assert job.state == "done", job.error
        exported = Tracks.load(job.frame_dir.parent / "tracks.npz").frame_numbers
        assert exported.tolist() == list(range(11, 132))  # every timeline frame
        expected_keys = tuple(int(np.floor(k * 1.5 + 0.5)) for k in range(81))  # 24 fps sampled at 16 fps
        assert job.plan.keys == expected_keys and job.plan.windows == ((0, 80),)

        assert bpy.ops.das.server_info(wait=True) == {"FINISHED"}
        info = server_info.KNOWN[server.address]
        assert info.window == WAN_MOVE_WINDOW
        assert server_info.describe(info).endswith("832x480, 81 frames at 16 fps, follows point-tracks")

        # A stale window (the server was restarted with another model): the job's thread plans for the one it runs.
        server_info.KNOWN[server.address] = replace(info, frames=DAS_WINDOW.frames, fps=DAS_WINDOW.fps)
        assert bpy.ops.das.generate() == {"FINISHED"}
        stale = jobs.latest()
        deadline = time.monotonic() + 30
        while stale.plan is None and stale.active and time.monotonic() < deadline:
            jobs.tick()
            time.sleep(0.01)
        assert stale.plan == job.plan, stale.error
        assert server_info.KNOWN[server.address].window == WAN_MOVE_WINDOW
        assert bpy.ops.das.cancel() == {"FINISHED"}  # no need to run the model again
        while stale.active and time.monotonic() < deadline:
            jobs.tick()
            time.sleep(0.01)
        assert stale.state == "cancelled", stale.error
    frames = sorted(job.frame_dir.glob("frame_*.png"))
    overlay = sorted((job.frame_dir.parent / "tracking").glob("frame_*.png"))
    assert len(frames) == len(overlay) == 81
    from PIL import Image

    with Image.open(frames[0]) as first, Image.open(overlay[0]) as drawn:
        assert first.size == drawn.size == (832, 480)
        assert np.asarray(drawn).std() > 5  # the points drawn on the reference, not black
    strips = {strip.name: strip for strip in strip_collection(scene)}
    for strip in (strips[job.strip_name], strips[f"tracking [{job.job_id[:8]}]"]):
        assert strip_span(strip) == (11, 132) and len(strip.elements) == 121
    assert Path(bpy.path.abspath(strips[job.strip_name].directory)) == job.frame_dir.parent / "shot"
