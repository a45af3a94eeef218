"""The DaS panels in the 3D viewport's and the Sequencer's sidebar (N-panel). They only draw.

Besides the settings and buttons: how many frames the model makes of the frame range at the server's
frame rate, in how many windows; the latest job's progress (the server's phases, then in-betweening)
and the last error; how long each depth request has waited; and "Re-attach jobs" while this scene
remembers unfinished jobs that nothing follows.
"""

from __future__ import annotations

import time

import bpy

from das_core.errors import DasError, plural
from das_core.tracking.shot import plan_shot
from das_core.tracking.window import ModelWindow

from . import depth_request, jobs, sequencer, server_info
from .job_inputs import export_range
from .operators import server_address


def draw_das_panel(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Settings, the three buttons, the running job's progress and the last error."""
    settings = context.scene.das
    layout.prop(settings, "server")
    _draw_server(layout, server_address(context))
    layout.prop(settings, "prompt")
    layout.prop(settings, "negative_prompt")
    row = layout.row(align=True)
    row.prop(settings, "seed")
    row.prop(settings, "steps")
    layout.prop(settings, "guidance")

    box = layout.box()
    box.prop(settings, "use_scene_range")
    if not settings.use_scene_range:
        row = box.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
    box.prop(settings, "frames")
    _draw_shot(box, context.scene, server_info.window_for(server_address(context)))
    box.prop(settings, "tracking_mode")

    box = layout.box()
    box.prop(settings, "reference")
    if settings.reference == "IMAGE":
        box.prop(settings, "reference_image")
    layout.prop(settings, "output_dir")
    layout.prop(settings, "add_tracking_strip")

    row = layout.row(align=True)
    row.operator("das.generate", icon="RENDER_ANIMATION")
    row.operator("das.cancel", icon="CANCEL")
    layout.operator("das.preview_tracking", icon="SEQUENCE")
    row = layout.row(align=True)
    row.operator("das.image_scene", icon="IMAGE_DATA")
    row.operator("das.split_by_depth", text="Split by depth", icon="MOD_EXPLODE")
    layout.operator("das.camera_move", icon="CAMERA_DATA")
    for pending in depth_request.PENDING:
        waited = time.monotonic() - pending.started
        layout.label(text=f"Depth of {pending.label}: asking the server ({waited:.0f} s)", icon="TIME")
    if jobs.unfollowed(context.scene):  # saved jobs nothing follows (e.g. their server was down at load)
        layout.operator("das.reattach", icon="FILE_REFRESH")

    job = jobs.latest(sequencer.sequencer_scene(context).session_uid)
    if job is not None:
        _draw_job(layout, job)
    error = jobs.ERRORS.get(context.scene.session_uid) or (job.error if job else "")
    if error:
        box = layout.box()
        box.alert = True
        for index, line in enumerate(_wrap(error, 48)):
            box.label(text=line, icon="ERROR" if index == 0 else "BLANK1")


def _draw_server(layout: bpy.types.UILayout, address: str) -> None:
    """What the server runs, as it last said (model, size, frames, fps), and the button to ask it."""
    row = layout.row()
    info = server_info.KNOWN.get(address)
    error = server_info.ASK_ERRORS.get(address)
    if info is not None:
        row.label(text=server_info.describe(info), icon="INFO")
    else:
        row.label(text=f"Server not asked yet: {error[:60]}" if error else "Server not asked yet", icon="QUESTION")
    row.operator("das.server_info", text="", icon="FILE_REFRESH")


def _draw_shot(layout: bpy.types.UILayout, scene: bpy.types.Scene, window: ModelWindow) -> None:
    """How many frames the model makes of the range at its frame rate, in how many windows."""
    start, end = export_range(scene)
    try:
        plan = plan_shot(end - start + 1, scene.render.fps / scene.render.fps_base, window)
    except DasError as error:
        layout.label(text=str(error), icon="ERROR")
        return
    layout.label(
        text=f"{plural(len(plan.keys), 'model frame')} at {window.fps:g} fps, {plural(len(plan.windows), 'window')}",
        icon="INFO",
    )


def _draw_job(layout: bpy.types.UILayout, job: jobs.Job) -> None:
    """A progress bar with phase, step and ETA (or the job's final state)."""
    if job.state == jobs.JobState.QUEUED:
        text = f"Queued ({job.queue_position} ahead)" if job.queue_position else "Queued"
    elif job.state == jobs.JobState.RUNNING:
        eta = f", ETA {job.eta_s:.0f} s" if job.eta_s is not None else ""
        text = f"{job.phase or 'running'} {job.step}/{job.total}{eta}"
    else:
        text = job.state.capitalize() + (f": {job.strip_name}" if job.strip_name else "")
    layout.progress(factor=job.progress, type="BAR", text=text)


def _wrap(text: str, width: int) -> list[str]:
    """Split a message into label-sized lines on word boundaries."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


class VIEW3D_PT_das(bpy.types.Panel):
    bl_label = "Diffusion as Shader"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DaS"

    def draw(self, context: bpy.types.Context) -> None:
        draw_das_panel(self.layout, context)


class SEQUENCER_PT_das(bpy.types.Panel):
    bl_label = "Diffusion as Shader"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "DaS"

    def draw(self, context: bpy.types.Context) -> None:
        draw_das_panel(self.layout, context)


CLASSES = (VIEW3D_PT_das, SEQUENCER_PT_das)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
