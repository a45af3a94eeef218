"""Operators: Generate, Cancel and Preview tracking video. Each polls, gathers on the main thread, hands off.

`bpy.ops.das.generate(wait=True)` is for scripts and batch use: it blocks until the strip is in the
sequencer, or fails (a RuntimeError in Python) with the server's error.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import bpy
from bpy.props import BoolProperty, StringProperty

from das_core.errors import DasError
from das_core.protocol import JobRequest

from . import jobs, sequencer
from .job_inputs import export_scene, job_directory, reference_image
from .network_thread import Connection, JobThread, cancel_in_background
from .properties import DEFAULT_SERVER, preferences
from .tracking_video import NUM_FRAMES

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
WAIT_POLL_S = 0.02


def connection_for(context: bpy.types.Context) -> Connection:
    """The scene's server (or the preferences' default) with the preferences' timeout and CURVE keys.

    A server on another machine needs Blender's online access (Preferences > System > Network).
    """
    prefs = preferences(context)
    address = context.scene.das.server.strip() or (prefs.default_server if prefs else DEFAULT_SERVER)
    if not is_local(address) and not bpy.app.online_access:
        raise DasError(
            f"{address} is on another machine and Blender's online access is off; allow it in "
            "Preferences > System > Network > Allow Online Access, or use a server on this machine"
        )
    if prefs is None:
        return Connection(address)
    return Connection(
        address, prefs.timeout, prefs.server_public_key.strip(), prefs.client_secret_key.strip(), prefs.client_public_key.strip()
    )


def is_local(address: str) -> bool:
    """True for loopback TCP addresses and same-machine transports (ipc://, inproc://)."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = (parts.hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class _JobOperator:
    """What Generate and Preview share: they need a scene camera, start a job with their
    `_start(context) -> jobs.Job`, and can wait for it."""

    wait: BoolProperty(
        name="Wait", description="Block until the strip is in the sequencer (for scripts)", default=False, options={"SKIP_SAVE"}
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and context.scene.camera is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Start the job; with `wait`, apply its events here until it ends (for scripts)."""
        scene = context.scene
        try:
            job = self._start(context)
        except DasError as error:
            jobs.ERRORS[scene.session_uid] = str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        jobs.ERRORS.pop(scene.session_uid, None)
        for warning in job.warnings:
            self.report({"WARNING"}, warning)
        if not self.wait:
            self.report({"INFO"}, f"DaS {'preview' if job.is_preview else 'job'} {job.job_id} started")
            return {"FINISHED"}
        while job.active:
            jobs.tick()
            time.sleep(WAIT_POLL_S)
        jobs.tick()
        if job.state != "done":
            self.report({"ERROR"}, job.error or f"DaS job {job.job_id} ended {job.state}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"added strip {job.strip_name!r}")
        return {"FINISHED"}


class DAS_OT_generate(_JobOperator, bpy.types.Operator):
    """Export the animation, send it with the prompt to the DaS server and add the video to the sequencer"""

    bl_idname = "das.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def _start(self, context: bpy.types.Context) -> jobs.Job:
        scene, settings = context.scene, context.scene.das
        if not settings.prompt.strip():
            raise DasError("the prompt is empty; describe the video in the DaS panel's Prompt field")
        connection = connection_for(context)
        tracks = export_scene(scene)
        job_id = uuid.uuid4().hex
        directory = job_directory(scene, job_id)
        frames = [int(frame) for frame in tracks.frame_numbers]
        image = reference_image(scene, frames[0], directory)
        tracks.save(directory / "tracks.npz")
        request = JobRequest(
            prompt=settings.prompt,
            image=image,
            tracking=None,  # rendered in the job's thread
            negative_prompt=settings.negative_prompt or None,
            seed=settings.seed,
            steps=settings.steps,
            guidance=settings.guidance,
            job_id=job_id,
            fps=NUM_FRAMES * scene.render.fps / scene.render.fps_base / max(1, frames[-1] - frames[0] + 1),
        )
        job = _job(context, job_id, settings.prompt, directory, tracks)
        job.add_tracking_strip = settings.add_tracking_strip
        job.thread = JobThread(
            job_id, tracks, settings.tracking_mode, directory / "tracking", jobs.OUTBOX,
            connection=connection, request=request, frame_dir=job.frame_dir,
        )  # fmt: skip
        jobs.start(job)
        return job


class DAS_OT_cancel(bpy.types.Operator):
    """Cancel this scene's running DaS job on the server"""

    bl_idname = "das.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    job_id: StringProperty(name="Job", description="Job to cancel; empty: the scene's latest running job", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return any(job.active and not job.is_preview for job in jobs.JOBS.values())

    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.job_id:
            job = jobs.JOBS.get(self.job_id)
        else:  # the newest running generation, preferring this sequencer scene's
            target = sequencer.sequencer_scene(context).session_uid
            running = [job for job in jobs.JOBS.values() if job.active and not job.is_preview]
            job = max(running, key=lambda job: (job.scene_uid == target, job.submitted_at), default=None)
        if job is None or not job.active or job.is_preview:
            self.report({"WARNING"}, "no running DaS job to cancel")
            return {"CANCELLED"}
        job.thread.request_cancel()
        if job.state != "rendering":  # the server has (or is getting) the job: tell it now
            cancel_in_background(job.thread.connection, job.job_id, jobs.OUTBOX)
        job.phase = "cancelling"
        self.report({"INFO"}, f"cancelling DaS job {job.job_id[:8]}")
        return {"FINISHED"}


class DAS_OT_preview_tracking(_JobOperator, bpy.types.Operator):
    """Render the tracking video of the animation and add it to the sequencer (no server needed)"""

    bl_idname = "das.preview_tracking"
    bl_label = "Preview tracking video"
    bl_options = {"REGISTER"}

    def _start(self, context: bpy.types.Context) -> jobs.Job:
        scene = context.scene
        tracks = export_scene(scene)
        job_id = uuid.uuid4().hex
        directory = job_directory(scene, f"preview-{job_id}")
        tracks.save(directory / "tracks.npz")  # so the same video can be re-rendered with `das render-tracking`
        job = _job(context, job_id, "", directory, tracks)
        job.thread = JobThread(job_id, tracks, scene.das.tracking_mode, directory / "tracking", jobs.OUTBOX)
        jobs.start(job)
        return job


def _job(context: bpy.types.Context, job_id: str, prompt: str, directory, tracks) -> jobs.Job:
    """A job whose strips span the exported frames, in the sequencer scene of this moment."""
    frames = [int(frame) for frame in tracks.frame_numbers]
    return jobs.Job(
        job_id=job_id,
        scene_uid=sequencer.sequencer_scene(context).session_uid,
        prompt=prompt,
        frame_dir=directory / "frames",
        source_frames=frames,
        frame_start=frames[0],
        frame_end=frames[-1],
        warnings=list(tracks.extra.get("warnings", [])),
    )


CLASSES = (DAS_OT_generate, DAS_OT_cancel, DAS_OT_preview_tracking)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    jobs.stop_timer()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
