"""Whole shots: one strip element per timeline frame, made from the model's frames at the model's frame rate.

Real Blender (bpy) and a real preview server on loopback. The 240-frame shot needs two DaS windows
(`JobRequest.windows`), which the server takes once multi-window jobs are in.
"""

import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_scenes import build_test_scene

from blender_addon.sequencer import strip_collection, strip_span
from das_core.workflow.local_server import LocalServer


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    with LocalServer("preview", tmp_path_factory.mktemp("preview-server")) as server:
        yield server


def _generate(scene, address: str, cache: Path, *, frame_end: int, frames: str):
    """Generate frames 1..frame_end of the test scene at 24 fps with the frames setting `frames`; the done job."""
    build_test_scene(scene, frame_start=1, frame_end=frame_end)  # rendered at 180 x 120
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.das.server, scene.das.prompt, scene.das.output_dir = address, "a bending column", str(cache)
    scene.das.reference, scene.das.frames, scene.das.add_tracking_strip = "WORKBENCH", frames, False
    assert bpy.ops.das.generate(wait=True) == {"FINISHED"}
    from blender_addon import jobs

    job = jobs.latest()
    assert job.state == "done", job.error
    return job


def _strip_files(scene, job) -> list[Path]:
    """The image each timeline frame of the job's strip shows."""
    (strip,) = [strip for strip in strip_collection(scene) if strip.name == job.strip_name]
    assert strip_span(strip) == (job.frame_start, job.frame_end + 1)
    directory = Path(bpy.path.abspath(strip.directory))
    return [directory / element.filename for element in strip.elements]


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_shot_of_two_windows_has_a_distinct_frame_at_every_timeline_frame(factory_scene, addon, preview, tmp_path):
    """240 frames at 24 fps: 80 model frames at DaS's 8 fps, in two windows; 240 different images on the timeline."""
    job = _generate(factory_scene, preview.address, tmp_path, frame_end=240, frames="every")
    assert job.plan.keys == tuple(range(0, 240, 3)) and job.plan.windows == ((0, 48), (48, 79))
    assert len(list(job.frame_dir.glob("frame_*.png"))) == 80  # the model's frames, one per key

    files = _strip_files(factory_scene, job)
    assert files == [job.frame_dir.parent / "shot" / f"frame_{index:05d}.png" for index in range(240)]
    images = [_pixels(path) for path in files]
    same = [index for index in range(1, 240) if np.array_equal(images[index - 1], images[index])]
    assert not same, f"timeline frames {same} repeat the frame before them"
    for key, index in enumerate(job.plan.keys):  # the model's frames as generated, the others made between them
        np.testing.assert_array_equal(images[index], _pixels(job.frame_dir / f"frame_{key:05d}.png"))


def test_model_frames_hold_each_key_until_the_next(factory_scene, addon, preview, tmp_path):
    """30 frames at 24 fps, one window of 10 model frames: the strip shows them, each for three timeline frames."""
    job = _generate(factory_scene, preview.address, tmp_path, frame_end=30, frames="model")
    assert job.plan.keys == tuple(range(0, 30, 3))
    files = _strip_files(factory_scene, job)
    assert files == [job.frame_dir / f"frame_{index // 3:05d}.png" for index in range(30)]
    assert not (job.frame_dir.parent / "shot").exists()  # nothing in-betweened, nothing written twice
    (record,) = factory_scene.das.jobs
    assert record.frames == "model"


def test_cancel_while_in_betweening_stops_with_the_model_frames_kept(factory_scene, addon, preview, tmp_path):
    scene = factory_scene
    build_test_scene(scene, frame_start=1, frame_end=30)
    scene.das.server, scene.das.prompt, scene.das.output_dir = preview.address, "a bending column", str(tmp_path)
    scene.das.reference = "WORKBENCH"
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    job = jobs.latest()
    deadline = time.monotonic() + 60
    while job.phase != "in-betweening" and job.active and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.005)
    assert (job.phase, job.total) == ("in-betweening", 30), job.error  # shown as "in-betweening 1/30, ETA ..."
    assert bpy.ops.das.cancel() == {"FINISHED"}
    while job.active and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.01)
    assert job.state == "cancelled" and job.error == ""
    assert job.strip_name == "" and len(strip_collection(scene)) == 0
    assert len(list(job.frame_dir.glob("frame_*.png"))) == 10  # the model's frames stay, to fetch again
