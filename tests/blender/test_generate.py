"""Generate, Cancel and server errors against real servers (`python -m das_server` subprocesses on loopback)."""

import itertools
import socket
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_scenes import add_color_strip, build_test_scene

from blender_addon.sequencer import strip_collection, strip_span
from das_core.workflow.local_server import LocalServer

TICK_BUDGET_S = 0.1  # the UI may not stall longer than this per timer tick


@pytest.fixture(scope="module")
def preview(tmp_path_factory):
    with LocalServer("preview", tmp_path_factory.mktemp("preview-server")) as server:
        yield server


@pytest.fixture(scope="module")
def preview_server(preview):
    return preview.address


def _setup(scene, address: str, cache: Path, prompt: str = "a bending column in a stone hall") -> None:
    build_test_scene(scene, frame_start=11, frame_end=40)
    scene.das.server = address
    scene.das.prompt = prompt
    scene.das.reference = "WORKBENCH"
    scene.das.output_dir = str(cache)


def _strips(scene):
    return {strip.name: strip for strip in strip_collection(scene)}


def _distinct_neighbours(paths: list[Path]) -> bool:
    """True if no image's pixels equal the one before it."""
    from PIL import Image

    images = [np.asarray(Image.open(path)) for path in paths]
    return all(not np.array_equal(before, after) for before, after in itertools.pairwise(images))


def test_generate_wait_adds_a_strip_of_every_timeline_frame_on_a_free_channel(
    factory_scene, addon, preview_server, tmp_path
):
    """30 timeline frames at 24 fps: the model makes every third (8 fps), the add-on in-betweens the rest."""
    scene = factory_scene
    _setup(scene, preview_server, tmp_path)
    busy = add_color_strip(scene, "busy", channel=1, frame_start=20, length=5)

    assert bpy.ops.das.generate(wait=True) == {"FINISHED"}

    from blender_addon import jobs

    job = jobs.latest()
    assert job.state == "done", job.error
    strips = _strips(scene)
    generated, tracking = strips[job.strip_name], strips[f"tracking [{job.job_id[:8]}]"]
    assert job.strip_name.startswith("a bending column") and job.job_id[:8] in job.strip_name
    assert (generated.channel, tracking.channel) == (busy.channel + 1, busy.channel + 2)
    for strip in (generated, tracking):
        assert strip_span(strip) == (11, 41)  # the exported span, 30 frames
        assert len(strip.elements) == 30
    assert job.plan.keys == tuple(range(0, 30, 3))
    assert len(list(job.frame_dir.glob("frame_*.png"))) == 10  # the model's frames, as they arrived
    shot = job.frame_dir.parent / "shot"
    assert Path(bpy.path.abspath(generated.directory)) == shot
    assert [element.filename for element in generated.elements] == [f"frame_{index:05d}.png" for index in range(30)]
    for key, index in enumerate(job.plan.keys):  # the model's frames unchanged, the others made between them
        assert (shot / f"frame_{index:05d}.png").read_bytes() == (job.frame_dir / f"frame_{key:05d}.png").read_bytes()
    assert _distinct_neighbours(sorted(shot.glob("frame_*.png")))
    names = [element.filename for element in tracking.elements]  # each timeline frame shows its key's control
    assert names[:4] == ["frame_00000.png"] * 3 + ["frame_00001.png"] and names[-1] == "frame_00009.png"
    assert (job.frame_dir.parent / "tracks.npz").is_file() and (job.frame_dir.parent / "reference.png").is_file()


def test_tracking_video_on_disk_is_what_was_sent(factory_scene, addon, preview, tmp_path):
    """The job is sent before its tracking PNGs are written; the PNGs still hold exactly the frames the server got."""
    _setup(factory_scene, preview.address, tmp_path)
    assert bpy.ops.das.generate(wait=True) == {"FINISHED"}
    from blender_addon import jobs
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video
    from das_core.wire.protocol import decode, split_parts

    job = jobs.latest()
    stored = (preview.state_dir / "jobs" / job.job_id / "request.das").read_bytes()  # the server's copy of the submit
    submit, _ = decode(split_parts(stored), decode_images=False)
    assert {frame.codec for frame in submit.tracking} == {"zlib"}  # the fast lossless codec
    sent = submit.to_request()
    assert sent.fps == 8.0  # the model's frame rate, not the scene's
    on_disk = read_video(job.frame_dir.parent / "tracking")
    assert on_disk.shape == (10, 480, 720, 3) and on_disk.max() > 100  # one frame per key
    np.testing.assert_array_equal(on_disk, sent.tracking)
    tracks = Tracks.load(job.frame_dir.parent / "tracks.npz")  # saved after sending, for `das render-tracking`
    assert tracks.frame_numbers.tolist() == list(range(11, 41))  # every timeline frame


def test_generate_returns_at_once_and_timer_ticks_stay_short(factory_scene, addon, preview_server, tmp_path):
    scene = factory_scene
    _setup(scene, preview_server, tmp_path)
    from blender_addon import jobs

    started = time.monotonic()
    assert bpy.ops.das.generate() == {"FINISHED"}
    job = jobs.latest()
    ticks, first_progress = [], None
    while job.active and time.monotonic() - started < 60:
        tick_start = time.perf_counter()
        jobs.tick()
        ticks.append(time.perf_counter() - tick_start)
        if first_progress is None and job.state == "running":
            first_progress = time.monotonic() - started
        time.sleep(0.01)
    assert job.state == "done", job.error
    # The 1 s target is measured by tests/benchmarks/addon_generate.py on a quiet machine; this bound
    # only catches a job that waits on something (shared CI cores have taken 3.5 s under load).
    assert first_progress is not None and first_progress < 5.0, f"first progress after {first_progress} s"
    assert max(ticks) < TICK_BUDGET_S, f"slowest tick {max(ticks):.3f} s"
    print(
        f"Generate -> first progress {first_progress:.2f} s (export + reference render included); slowest tick {max(ticks) * 1000:.1f} ms"
    )


def test_two_jobs_queue_and_both_land(factory_scene, addon, preview_server, tmp_path):
    scene = factory_scene
    _setup(scene, preview_server, tmp_path)
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    scene.das.seed = 7
    assert bpy.ops.das.generate() == {"FINISHED"}
    deadline = time.monotonic() + 60
    while any(job.active for job in jobs.JOBS.values()) and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.02)
    assert [job.state for job in jobs.JOBS.values()] == ["done", "done"]
    channels = sorted(_strips(scene)[job.strip_name].channel for job in jobs.JOBS.values())
    assert channels == [1, 3]  # each with its tracking strip above


def test_cancel_reaches_the_server_and_wait_raises_the_servers_error(factory_scene, addon, tmp_path):
    """The tiny backend (real diffusers classes, random weights) runs long enough to be refused and cancelled."""
    scene = factory_scene
    with LocalServer("tiny", tmp_path / "tiny-server", extra_args=("--max-queue", "1")) as server:
        _setup(scene, server.address, tmp_path / "cache")
        scene.das.steps = 200
        from blender_addon import jobs

        assert bpy.ops.das.generate() == {"FINISHED"}
        job = jobs.latest()
        deadline = time.monotonic() + 60
        while job.state != "running" and job.active and time.monotonic() < deadline:
            jobs.tick()
            time.sleep(0.02)
        assert job.state == "running", job.error

        # A second job while the server's one-job queue is full: wait=True raises with the server's words.
        with pytest.raises(RuntimeError, match="queue is full"):
            bpy.ops.das.generate(wait=True)
        assert jobs.latest().state == "failed" and jobs.latest() is not job

        assert bpy.ops.das.cancel() == {"FINISHED"}
        while job.active and time.monotonic() < deadline:
            jobs.tick()
            time.sleep(0.02)
        assert job.state == "cancelled", job.error
        assert job.step < 200
        from das_core.wire.client import DasClient

        with DasClient(server.address) as client:
            assert client.status(job.job_id).state == "cancelled"
    assert job.strip_name == "" and job.name not in _strips(scene)


def test_server_down_is_a_clear_error_within_seconds(factory_scene, addon, tmp_path):
    scene = factory_scene
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _setup(scene, f"tcp://127.0.0.1:{port}", tmp_path)
    addon.timeout = 1.0

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="no das server answered"):
        bpy.ops.das.generate(wait=True)
    assert time.monotonic() - started < 6.0
    assert scene.sequence_editor is None or len(strip_collection(scene)) == 0


def test_remote_server_needs_online_access(factory_scene, addon, tmp_path):
    assert not bpy.app.online_access  # headless bpy starts with online access off
    _setup(factory_scene, "tcp://192.0.2.10:5555", tmp_path)
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.das.generate(wait=True)
    from blender_addon import jobs

    assert "online access" in jobs.ERRORS[factory_scene.session_uid]


def test_empty_prompt_is_refused_before_any_work(factory_scene, addon, tmp_path):
    _setup(factory_scene, "tcp://127.0.0.1:1", tmp_path, prompt="  ")
    with pytest.raises(RuntimeError, match="prompt is empty"):
        bpy.ops.das.generate(wait=True)
    assert not any(tmp_path.iterdir())


def test_cancel_before_sending_drops_the_job_locally(factory_scene, addon, tmp_path):
    scene = factory_scene
    with socket.socket() as probe:  # no server: a job that reached the network would fail, not cancel
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _setup(scene, f"tcp://127.0.0.1:{port}", tmp_path)
    scene.render.resolution_percentage = 100  # a slower tracking render, so Cancel lands before it ends
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    job = jobs.latest()
    assert job.state == "rendering"
    assert bpy.ops.das.cancel() == {"FINISHED"}
    deadline = time.monotonic() + 30
    while job.active and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.02)
    assert job.state == "cancelled" and job.error == ""


def test_generate_with_a_chosen_reference_image(factory_scene, addon, preview_server, tmp_path):
    from PIL import Image

    scene = factory_scene
    _setup(scene, preview_server, tmp_path / "cache")
    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "painted.png")  # a "repainted first frame"
    scene.das.reference = "IMAGE"
    scene.das.reference_image = str(tmp_path / "painted.png")

    assert bpy.ops.das.generate(wait=True) == {"FINISHED"}

    from blender_addon import jobs

    job = jobs.latest()
    first = np.asarray(Image.open(job.frame_dir / "frame_00000.png"))
    # The preview backend shows the reference (3:2, so no letterbox bars) wherever nothing is tracked.
    colours, counts = np.unique(first.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(colours[counts.argmax()]) == (200, 30, 30) and counts.max() > first.shape[0] * first.shape[1] // 2
    assert not (job.frame_dir.parent / "reference.png").exists()  # nothing was rendered


def test_missing_reference_image_is_a_clear_error(factory_scene, addon, preview_server, tmp_path):
    _setup(factory_scene, preview_server, tmp_path)
    factory_scene.das.reference = "IMAGE"
    with pytest.raises(RuntimeError, match="no file is chosen"):
        bpy.ops.das.generate(wait=True)


def test_strip_lands_in_the_submit_time_scene_even_after_a_rename(factory_scene, addon, preview_server, tmp_path):
    scene = factory_scene
    _setup(scene, preview_server, tmp_path)
    from blender_addon import jobs

    assert bpy.ops.das.generate() == {"FINISHED"}
    scene.name = "Renamed while generating"
    other = bpy.data.scenes.new("Another scene")  # not the target, even if it becomes the context's
    bpy.context.window.scene = other
    job = jobs.latest()
    deadline = time.monotonic() + 60
    while job.active and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.02)
    assert job.state == "done", job.error
    assert job.strip_name in _strips(bpy.data.scenes["Renamed while generating"])
    assert other.sequence_editor is None


def test_deleted_target_scene_fails_the_job_with_the_frames_folder(factory_scene, addon, tmp_path):
    build_test_scene(factory_scene)
    factory_scene.das.output_dir = str(tmp_path)
    from blender_addon import jobs

    assert bpy.ops.das.preview_tracking() == {"FINISHED"}
    job = jobs.latest()
    bpy.context.window.scene = bpy.data.scenes.new("Shot")
    bpy.data.scenes.remove(factory_scene)
    deadline = time.monotonic() + 30
    while job.active and time.monotonic() < deadline:
        jobs.tick()
        time.sleep(0.02)
    assert job.state == "failed" and "no longer exists" in job.error and str(tmp_path) in job.error


def _start_server_we_can_kill(backend: str, state_dir: Path) -> tuple[subprocess.Popen, str]:
    """`python -m das_server` as our own subprocess (LocalServer only stops politely), once it answers."""
    from das_core.wire.client import DasClient, ServerUnavailable
    from das_core.workflow.local_server import free_loopback_port

    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    command = [
        sys.executable,
        "-m",
        "das_server",
        "--backend",
        backend,
        "--bind",
        address,
        "--state-dir",
        str(state_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with DasClient(address, timeout=1.0) as client:
                client.info()
            return process, address
        except ServerUnavailable:
            assert process.poll() is None, "the server exited at start-up"
    process.kill()
    raise AssertionError("the server did not start")


def test_server_going_away_mid_job_fails_within_seconds(factory_scene, addon, tmp_path):
    scene = factory_scene
    addon.timeout = 1.0
    process, address = _start_server_we_can_kill("tiny", tmp_path / "tiny-server")
    try:
        _setup(scene, address, tmp_path / "cache")
        scene.das.steps = 200
        from blender_addon import jobs

        assert bpy.ops.das.generate() == {"FINISHED"}
        job = jobs.latest()
        deadline = time.monotonic() + 60
        while job.state != "running" and job.active and time.monotonic() < deadline:
            jobs.tick()
            time.sleep(0.02)
        assert job.state == "running", job.error
        process.kill()  # no goodbye: the machine or process is simply gone
        process.wait()
        gone = time.monotonic()
        while job.active and time.monotonic() - gone < 30:
            jobs.tick()
            time.sleep(0.02)
        waited = time.monotonic() - gone
    finally:
        process.kill()
        process.wait()
    assert job.state == "offline" and "stopped answering" in job.error, job.error  # re-attach may still get it
    assert waited < 1.0 + 2.0, f"noticed after {waited:.1f} s"
