"""Jobs re-attach after Blender restarts: real Blender (bpy), a real preview server on loopback, real .blend files.

"Restarting" is what Blender does to the add-on's state when a file is opened: `read_homefile`
clears the session (its job threads are abandoned), `open_mainfile` loads the saved scene with its
remembered jobs and the add-on's `load_post` handler follows them again.
"""

import socket
import time
import uuid
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


def _run_until(condition, seconds: float = 30.0) -> None:
    from blender_addon import jobs

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.01)
    assert condition(), "timed out"


def _assert_every_frame_strip(strip, folder: Path, plan) -> None:
    """`strip` shows shot/'s frames in order: the shot made from the job's frames and tracks, as without a restart."""
    from das_core.tracking.shot import scene_frames
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video

    assert Path(bpy.path.abspath(strip.directory)).resolve() == (folder / "shot").resolve()
    assert [element.filename for element in strip.elements] == [f"frame_{t:05d}.png" for t in range(plan.num_frames)]
    expected = scene_frames(Tracks.load(folder / "tracks.npz"), plan, read_video(folder / "frames"))
    np.testing.assert_array_equal(read_video(folder / "shot"), np.stack(list(expected)))


def _restart_blender_and_open(path) -> None:
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")  # the session's jobs are gone
    from blender_addon import jobs

    assert not jobs.JOBS
    bpy.ops.wm.open_mainfile(filepath=str(path))  # load_post re-attaches


def test_a_job_finished_while_blender_was_closed_lands_on_load(factory_scene, addon, preview, tmp_path):
    scene = factory_scene
    name = scene.name
    build_test_scene(scene, frame_start=11, frame_end=40)
    scene.das.server = preview.address
    scene.das.prompt = "a bending column in a stone hall"
    scene.das.reference = "WORKBENCH"
    scene.das.output_dir = str(tmp_path / "cache")
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    job = jobs.latest()
    _run_until(lambda: job.state != "rendering" and job.state != "submitting")
    assert job.state in ("queued", "running"), (job.state, job.error)
    (record,) = scene.das.jobs
    assert record.frames == "every" and jobs.plan_from_text(record.shot_plan) == job.plan  # remembered for re-attach
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))  # no tick after this: saved unfinished
    deadline = time.monotonic() + 30
    while not list(job.frame_dir.glob("frame_*.png")) and time.monotonic() < deadline:
        time.sleep(0.01)  # the job's thread writes frames without the timer: closed mid-job, frames on disk
    old_thread = job.thread

    _restart_blender_and_open(tmp_path / "shot.blend")
    old_thread.join(30)  # abandoned: it stops at its next event and posts nothing more
    from das_core.wire.client import DasClient

    with DasClient(preview.address) as client:  # the server finishes it meanwhile
        deadline = time.monotonic() + 30
        while client.status(job.job_id).state != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
    kept = {path.name: path.stat().st_mtime_ns for path in job.frame_dir.glob("frame_*.png")}
    assert kept, "frames written before the restart"

    scene = bpy.data.scenes[name]
    (record,) = scene.das.jobs
    assert (record.job_id, record.server, record.state) == (job.job_id, preview.address, job.state)
    followed = jobs.JOBS[job.job_id]
    assert followed is not job and followed.active
    _run_until(lambda: not followed.active)

    assert followed.state == "done", followed.error
    assert record.state == "done"
    strips = {strip.name: strip for strip in strip_collection(scene)}
    generated, tracking = strips[followed.strip_name], strips[f"tracking [{job.job_id[:8]}]"]
    assert generated.name == job.name
    for strip in (generated, tracking):
        assert strip_span(strip) == (11, 41)  # the span recorded at submit time
        assert len(strip.elements) == 30
    assert (generated.channel, tracking.channel) == (1, 2)
    assert followed.plan == job.plan and len(list(job.frame_dir.glob("frame_*.png"))) == 10  # one per key
    assert {name: (job.frame_dir / name).stat().st_mtime_ns for name in kept} == kept, "frames on disk are kept"
    _assert_every_frame_strip(generated, job.frame_dir.parent, job.plan)
    held = [element.filename for element in tracking.elements]
    assert held == [f"frame_{index // 3:05d}.png" for index in range(30)]  # each timeline frame's key's control
    assert bpy.ops.das.reattach() == {"FINISHED"} and jobs.JOBS[job.job_id] is followed  # nothing left to follow


def test_a_moved_project_follows_its_job_in_its_own_cache(factory_scene, addon, preview, tmp_path):
    """The .blend moved with its das_cache/ while a job ran: the recorded folder is gone, so the job's
    frames and strips come from the same job's folder next to the file now."""
    import shutil

    scene = factory_scene
    name = scene.name
    build_test_scene(scene, frame_start=1, frame_end=20)
    scene.das.server = preview.address
    scene.das.prompt = "a column, moved to another disk"
    scene.das.reference = "WORKBENCH"
    (tmp_path / "old").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "old" / "shot.blend"))  # cache: old/das_cache
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    job = jobs.latest()
    _run_until(lambda: job.state not in ("rendering", "submitting"))
    assert job.state in ("queued", "running"), (job.state, job.error)
    bpy.ops.wm.save_mainfile()
    old_thread = job.thread
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    old_thread.join(30)
    deadline = time.monotonic() + 30
    while len(list((job.frame_dir.parent / "tracking").glob("frame_*.png"))) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)  # the tracking video (7 model frames of 20 timeline frames) is written while the job runs
    shutil.move(tmp_path / "old", tmp_path / "new")

    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "new" / "shot.blend"))
    followed = jobs.JOBS[job.job_id]
    _run_until(lambda: not followed.active)
    assert followed.state == "done", followed.error
    moved = tmp_path / "new" / "das_cache" / job.job_id
    assert followed.frame_dir == moved / "frames" and len(list(followed.frame_dir.glob("frame_*.png"))) == 7
    assert not (tmp_path / "old").exists()
    strips = {strip.name: strip for strip in strip_collection(bpy.data.scenes[name])}
    for strip in (strips[followed.strip_name], strips[f"tracking [{job.job_id[:8]}]"]):
        assert Path(bpy.path.abspath(strip.directory)).resolve().is_relative_to(moved.resolve())
        assert strip_span(strip) == (1, 21)


def test_a_job_saved_before_its_shot_was_planned_is_planned_from_its_tracks(factory_scene, addon, preview, tmp_path):
    """A file saved while the job's thread was still planning keeps no plan: re-attaching plans the shot again from
    the job's tracks.npz at the server's frame rate, and lands the strip the frames setting names (model: held)."""
    scene = factory_scene
    name = scene.name
    build_test_scene(scene, frame_start=1, frame_end=12)
    scene.das.server, scene.das.prompt, scene.das.reference = preview.address, "a column", "WORKBENCH"
    scene.das.output_dir, scene.das.frames = str(tmp_path / "cache"), "model"
    assert bpy.ops.das.generate(wait=True) == {"FINISHED"}
    from blender_addon import jobs

    job = jobs.latest()
    (record,) = scene.das.jobs
    record.state, record.shot_plan = "running", ""  # as saved before the plan arrived
    scene.sequence_editor_clear()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))

    _restart_blender_and_open(tmp_path / "shot.blend")
    followed = jobs.JOBS[job.job_id]
    _run_until(lambda: not followed.active)
    assert followed.state == "done", followed.error
    assert followed.plan == job.plan and followed.plan.keys == (0, 3, 6, 9)
    (record,) = bpy.data.scenes[name].das.jobs
    assert jobs.plan_from_text(record.shot_plan) == job.plan  # remembered this time
    strips = {strip.name: strip for strip in strip_collection(bpy.data.scenes[name])}
    generated = strips[followed.strip_name]
    assert [element.filename for element in generated.elements] == [f"frame_{t // 3:05d}.png" for t in range(12)]
    assert Path(bpy.path.abspath(generated.directory)).resolve() == job.frame_dir.resolve()


def _remember(scene, job_id: str, server: str, directory) -> None:
    record = scene.das.jobs.add()
    record.job_id, record.server, record.sequencer_scene = job_id, server, scene
    record.frame_start, record.frame_end = 1, 3
    record.prompt, record.directory, record.state = "lost", str(directory), "running"


def test_a_job_the_server_no_longer_knows_gives_a_message(factory_scene, addon, preview, tmp_path):
    scene = factory_scene
    job_id = uuid.uuid4().hex
    _remember(scene, job_id, preview.address, tmp_path / job_id)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    _restart_blender_and_open(tmp_path / "shot.blend")
    from test_panel import RecordingLayout

    from blender_addon import jobs, panel

    assert [handler.__name__ for handler in bpy.app.handlers.load_post].count("_reattach_on_load") == 1
    job = jobs.JOBS[job_id]
    _run_until(lambda: not job.active)
    assert job.state == "failed"
    assert f"no longer knows job {job_id[:8]}" in job.error and str(tmp_path / job_id) in job.error
    assert bpy.context.scene.das.jobs[0].state == "failed"  # not followed again at the next load
    log = []
    panel.draw_das_panel(RecordingLayout(log), bpy.context)
    drawn = " ".join(text for kind, text in log if kind == "label")
    assert "no longer knows job" in drawn and ("operator", "das.reattach") not in log


def test_reattach_with_the_server_down_says_so_and_can_be_retried(factory_scene, addon, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    addon.timeout = 1.0
    job_id = uuid.uuid4().hex
    _remember(factory_scene, job_id, f"tcp://127.0.0.1:{port}", tmp_path / job_id)

    with pytest.raises(RuntimeError, match="no das server answered"):
        bpy.ops.das.reattach(wait=True)
    from test_panel import RecordingLayout

    from blender_addon import jobs, panel

    assert jobs.JOBS[job_id].state == "offline"
    log = []
    panel.draw_das_panel(RecordingLayout(log), bpy.context)
    assert ("operator", "das.reattach") in log  # the button to retry once the server runs


@pytest.mark.parametrize(
    "server, scene_gone, state, message",
    [
        ("tcp://127.0.0.1:1", True, "failed", "sequencer scene no longer exists"),
        ("tcp://192.0.2.10:5555", False, "offline", "online access is off"),  # headless bpy: online access off
    ],
)
def test_reattach_refuses_clearly_without_a_connection(
    factory_scene, addon, tmp_path, server, scene_gone, state, message
):
    _remember(factory_scene, uuid.uuid4().hex, server, tmp_path)
    if scene_gone:
        factory_scene.das.jobs[0].sequencer_scene = None
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.das.reattach(wait=True)
    from blender_addon import jobs

    (job,) = jobs.JOBS.values()
    assert job.state == state and job.thread is None
