"""The panel's draw code against the real settings and operators.

Headless Blender draws no UI, so a recording layout stands in for `UILayout`: it checks that every
property drawn exists on the real `scene.das` and every button names a registered operator.
"""

import time

import bpy
import pytest

from blender_addon import jobs


class RecordingLayout:
    """Records what a panel draws; fails on unknown properties or operators like Blender would."""

    def __init__(self, log):
        self.log, self.alert = log, False

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"no property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        try:  # `hasattr(bpy.ops.<module>, name)` is true for any name; only a registered one has an RNA type
            getattr(getattr(bpy.ops, module), name).get_rna_type()
        except KeyError:
            raise AssertionError(f"no operator {idname}") from None
        self.log.append(("operator", idname))

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))


def _draw(context):
    from blender_addon.panel import draw_das_panel

    log = []
    draw_das_panel(RecordingLayout(log), context)
    return log


def test_panel_shows_what_the_server_last_said_it_runs(factory_scene, addon):
    from blender_addon import server_info
    from das_core.tracking.window import WAN_MOVE_WINDOW
    from das_core.wire.protocol import Limits, ServerInfo

    window = WAN_MOVE_WINDOW
    info = ServerInfo(
        version=1, das="0", backend="wan-move", model="weights/wan-move", device="cuda", preview=False,
        queue_length=0, max_queue=64, max_queue_per_client=16, result_codec="raw", limits=Limits(max_frames=81),
        control=window.control, width=window.width, height=window.height, frames=window.frames, fps=window.fps,
    )  # fmt: skip
    factory_scene.das.server = "tcp://127.0.0.1:5999"
    server_info.remember("tcp://127.0.0.1:5999", info)
    try:
        labels = [text for kind, text in _draw(bpy.context) if kind == "label"]
    finally:
        server_info.KNOWN.clear()
    line = "wan-move: weights/wan-move; 832x480, 81 frames at 16 fps, follows point-tracks"
    assert line in labels


def test_panel_draws_settings_buttons_progress_and_error(factory_scene, addon, tmp_path):
    context = bpy.context
    log = _draw(context)
    drawn = {name for kind, name in log if kind == "prop"}
    assert {"server", "prompt", "negative_prompt", "seed", "steps", "guidance", "reference", "frames"} <= drawn
    operators = [name for kind, name in log if kind == "operator"]
    assert operators == [
        "das.server_info", "das.generate", "das.cancel", "das.preview_tracking",
        "das.image_scene", "das.split_by_depth", "das.camera_move",
    ]  # fmt: skip
    assert ("label", "Server not asked yet") in log
    # Frames 1..250 at 24 fps: the model's frames at DaS's 8 fps (until the server says) are every third.
    assert ("label", "84 model frames at 8 fps, 2 windows") in log

    factory_scene.das.use_scene_range = False
    factory_scene.das.frame_start, factory_scene.das.frame_end = 10, 12
    factory_scene.das.reference = "IMAGE"
    log = _draw(context)
    assert {"frame_start", "frame_end", "reference_image"} <= {name for kind, name in log if kind == "prop"}
    assert ("label", "1 model frame at 8 fps, 1 window") in log
    factory_scene.das.frame_end = 9
    assert ("label", "a shot needs at least one timeline frame, got 0") in _draw(context)

    job = jobs.Job("0123456789abcdef", factory_scene.session_uid, "a prompt", tmp_path, 1, 49)
    job.state, job.phase, job.step, job.total, job.eta_s = "running", "denoise", 12, 50, 31.0
    jobs.JOBS[job.job_id] = job
    jobs.ERRORS[factory_scene.session_uid] = "no das server answered at tcp://127.0.0.1:5555 within 10 s; start one"
    log = _draw(context)
    assert ("progress", "denoise 12/50, ETA 31 s") in log
    labels = " ".join(text for kind, text in log if kind == "label")
    assert "no das server answered" in labels and "start one" in labels


def test_the_recording_layout_refuses_what_blender_would(factory_scene, addon):
    layout = RecordingLayout([])
    layout.operator("das.generate")
    with pytest.raises(AssertionError, match="no operator das.no_such_operator"):
        layout.operator("das.no_such_operator")
    with pytest.raises(AssertionError, match="no property 'no_such_setting'"):
        layout.prop(factory_scene.das, "no_such_setting")


def test_panel_shows_how_long_a_depth_request_has_waited(factory_scene, addon):
    from blender_addon import depth_request

    depth_request.PENDING.append(depth_request.PendingDepth("street.jpg", print, print, started=time.monotonic() - 3))
    try:
        labels = [text for kind, text in _draw(bpy.context) if kind == "label"]
    finally:
        depth_request.PENDING.clear()
    assert "Depth of street.jpg: asking the server (3 s)" in labels
