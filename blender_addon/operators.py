"""Operators: Generate, Cancel, Preview tracking video and Re-attach. Each polls, gathers on the main thread, hands off.

`bpy.ops.das.generate(wait=True)` is for scripts and batch use: it blocks until the strip is in the
sequencer, or fails (a RuntimeError in Python) with the server's error. Generations are remembered in
the .blend; opening it again follows the unfinished ones (a `load_post` handler, `reattach`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import bpy
from bpy.app.handlers import persistent
from bpy.props import BoolProperty, StringProperty

from das_core.errors import DasError, plural
from das_core.wire.protocol import JobRequest

from . import jobs, sequencer, server_info
from .job_inputs import cache_dir, chosen_reference, export_scene, job_directory, rendered_reference
from .network_thread import Connection, JobThread, ReattachThread, cancel_in_background
from .properties import DEFAULT_SERVER, preferences

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
WAIT_POLL_S = 0.02


def connection_for(context: bpy.types.Context) -> Connection:
    """The scene's server (or the preferences' default) with the preferences' timeout and CURVE keys.

    A server on another machine needs Blender's online access (Preferences > System > Network).
    """
    return connection_to(server_address(context), context)


def server_address(context: bpy.types.Context) -> str:
    """The scene's server, or the preferences' default."""
    prefs = preferences(context)
    return context.scene.das.server.strip() or (prefs.default_server if prefs else DEFAULT_SERVER)


def connection_to(address: str, context: bpy.types.Context) -> Connection:
    """`address` with the preferences' timeout and CURVE keys; a clear error if online access forbids it."""
    prefs = preferences(context)
    if not is_local(address) and not bpy.app.online_access:
        raise DasError(
            f"{address} is on another machine and Blender's online access is off; allow it in "
            "Preferences > System > Network > Allow Online Access, or use a server on this machine"
        )
    if prefs is None:
        return Connection(address)
    return Connection(
        address,
        prefs.timeout,
        prefs.server_public_key.strip(),
        prefs.client_secret_key.strip(),
        prefs.client_public_key.strip(),
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
        name="Wait",
        description="Block until the strip is in the sequencer (for scripts)",
        default=False,
        options={"SKIP_SAVE"},
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
        if job.state != jobs.JobState.DONE:
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
        # The reference is rendered at this window's size; the job's thread asks again, and plans the shot.
        window = server_info.window_asking(connection)
        image = chosen_reference(scene, window)  # a picked image is read first: a missing file fails before any work
        tracks = export_scene(scene)
        job_id = uuid.uuid4().hex
        directory = job_directory(scene, job_id)
        if image is None:
            # Before the job's thread starts: on few cores, its tracking render would slow this
            # render and hold Blender longer (measured: 0.35 -> 0.53 s warm, 1.07 -> 1.44 s on the
            # first press of a session, with no earlier first progress).
            image = rendered_reference(scene, int(tracks.frame_numbers[0]), directory, window)
        request = JobRequest(
            prompt=settings.prompt,
            image=image,
            tracking=None,  # the control, its windows and the model's fps are set in the job's thread
            negative_prompt=settings.negative_prompt or None,
            seed=settings.seed,
            steps=settings.steps,
            guidance=settings.guidance,
            job_id=job_id,
        )
        job = _job(context, job_id, settings.prompt, directory, tracks)
        job.add_tracking_strip, job.frames_setting = settings.add_tracking_strip, settings.frames
        job.thread = JobThread(
            job_id, tracks, settings.tracking_mode, directory / "tracking", jobs.OUTBOX,
            connection=connection, request=request, frame_dir=job.frame_dir, tracks_path=directory / "tracks.npz",
            window=window, frames_setting=settings.frames,
        )  # fmt: skip
        jobs.start(job)
        jobs.remember(job, scene, connection.address)
        return job


class DAS_OT_cancel(bpy.types.Operator):
    """Cancel this scene's running DaS job on the server"""

    bl_idname = "das.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    job_id: StringProperty(
        name="Job", description="Job to cancel; empty: the scene's latest running job", options={"SKIP_SAVE"}
    )

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
        if job.state != jobs.JobState.RENDERING:  # the server has (or is getting) the job: tell it now
            cancel_in_background(job.thread.connection, job.job_id, jobs.OUTBOX)
        job.phase = "cancelling"
        self.report({"INFO"}, f"cancelling DaS job {job.job_id[:8]}")
        return {"FINISHED"}


class DAS_OT_preview_tracking(_JobOperator, bpy.types.Operator):
    """Render the control of the whole shot (tracking video, or point tracks for Wan-Move) into the sequencer"""

    bl_idname = "das.preview_tracking"
    bl_label = "Preview tracking video"
    bl_options = {"REGISTER"}

    def _start(self, context: bpy.types.Context) -> jobs.Job:
        scene = context.scene
        window = server_info.window_for(server_address(context))  # as the server last said; no server needed
        tracks = export_scene(scene)
        job_id = uuid.uuid4().hex
        directory = job_directory(scene, f"preview-{job_id}")
        job = _job(context, job_id, "", directory, tracks)
        job.thread = JobThread(  # the tracks are saved too, so `das render-tracking` can make the same video
            job_id,
            tracks,
            scene.das.tracking_mode,
            directory / "tracking",
            jobs.OUTBOX,
            tracks_path=directory / "tracks.npz",
            window=window,
        )
        jobs.start(job)
        return job


def _job(context: bpy.types.Context, job_id: str, prompt: str, directory, tracks) -> jobs.Job:
    """A job whose strips span the exported frames, in the sequencer scene of this moment."""
    return jobs.Job(
        job_id=job_id,
        scene_uid=sequencer.sequencer_scene(context).session_uid,
        prompt=prompt,
        frame_dir=directory / "frames",
        frame_start=int(tracks.frame_numbers[0]),
        frame_end=int(tracks.frame_numbers[-1]),
        warnings=list(tracks.extra.get("warnings", [])),
    )


class DAS_OT_reattach(bpy.types.Operator):
    """Follow this file's unfinished DaS jobs again: fetch each from its server and add its strip when it is done.

    Runs by itself when a .blend is opened (every scene's `das.jobs` whose state is not done, failed
    or cancelled, and that nothing follows yet); call it from scripts to retry, e.g. after starting a
    server that was down. Frames already on disk are kept; the shot's frames are made again as the
    recorded plan and frames setting say (in-betweened from the job folder's tracks.npz for "every
    frame"), and the strip lands in the recorded sequencer scene over the recorded span, as it would have. A job its server no longer knows fails with a
    message saying so. With `wait`, it blocks until every followed job has ended and fails (a
    RuntimeError in Python) with the first error.
    """

    bl_idname = "das.reattach"
    bl_label = "Re-attach jobs"
    bl_options = {"REGISTER"}

    wait: BoolProperty(
        name="Wait",
        description="Block until the re-attached jobs end (for scripts)",
        default=False,
        options={"SKIP_SAVE"},
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        followed = reattach(context)
        if not followed:
            self.report({"INFO"}, "no unfinished DaS jobs to re-attach in this file")
            return {"FINISHED"}
        while self.wait and any(job.active for job in followed):
            jobs.tick()
            time.sleep(WAIT_POLL_S)
        jobs.tick()
        failed = [job for job in followed if job.state != jobs.JobState.DONE and not job.active]
        if self.wait and failed:
            self.report({"ERROR"}, failed[0].error or f"DaS job {failed[0].job_id} ended {failed[0].state}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"following {plural(len(followed), 'DaS job')} again")
        return {"FINISHED"}


def reattach(context: bpy.types.Context) -> list[jobs.Job]:
    """Start following every unfinished remembered job of the open file; returns the jobs."""
    followed = []
    for record in jobs.unfollowed():
        scene = record.sequencer_scene or record.id_data
        directory = _job_folder(record)
        job = jobs.Job(
            job_id=record.job_id,
            scene_uid=scene.session_uid,
            prompt=record.prompt,
            frame_dir=directory / "frames",
            frame_start=record.frame_start,
            frame_end=record.frame_end,
            frames_setting=record.frames,
            plan=jobs.plan_from_text(record.shot_plan),
            add_tracking_strip=record.add_tracking_strip,
            state=jobs.JobState.QUEUED,  # the server has it (or says it does not)
            tracking_dir=directory / "tracking",
        )
        followed.append(job)
        if record.sequencer_scene is None:
            job.state, job.error = (
                jobs.JobState.FAILED,
                f"the job's sequencer scene no longer exists; its frames are in {directory}",
            )
            jobs.JOBS[job.job_id] = job
            record.state = job.state
            continue
        try:
            connection = connection_to(record.server, context)
        except DasError as error:
            job.state, job.error = jobs.JobState.OFFLINE, str(error)
            jobs.JOBS[job.job_id] = job
            continue
        job.thread = ReattachThread(
            record.job_id, jobs.OUTBOX, connection, job.frame_dir, tracks_path=directory / "tracks.npz",
            frames_setting=job.frames_setting, plan=job.plan,
        )  # fmt: skip
        jobs.start(job)
    return followed


def _job_folder(record: bpy.types.PropertyGroup) -> Path:
    """A remembered job's folder: where it was made or, when that is gone and the file's cache folder
    has the job's folder (the project moved with its cache), that one."""
    recorded = Path(bpy.path.abspath(record.directory))
    moved = cache_dir(record.id_data) / record.job_id
    return moved if not recorded.exists() and moved.is_dir() else recorded


@persistent
def _forget_on_load(_filepath: str) -> None:
    jobs.forget_session()


@persistent
def _reattach_on_load(_filepath: str) -> None:
    reattach(bpy.context)


class DAS_OT_server_info(bpy.types.Operator):
    """Ask the server which model it runs (size, frames, fps and the control it follows); the panel shows it"""

    bl_idname = "das.server_info"
    bl_label = "Ask server"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", description="Block until the server answered (for scripts)", options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            thread = server_info.ask_in_background(connection_for(context))
        except DasError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if self.wait:
            thread.join()
        return {"FINISHED"}


CLASSES = (DAS_OT_generate, DAS_OT_cancel, DAS_OT_preview_tracking, DAS_OT_reattach, DAS_OT_server_info)
HANDLERS = ((bpy.app.handlers.load_pre, _forget_on_load), (bpy.app.handlers.load_post, _reattach_on_load))


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    _remove_handlers()
    for handlers, handler in HANDLERS:
        handlers.append(handler)


def unregister() -> None:
    _remove_handlers()
    jobs.stop_timer()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)


def _remove_handlers() -> None:
    """Remove our load handlers, also those of an earlier copy of this module (an add-on reloaded from disk)."""
    for handlers, handler in HANDLERS:
        for existing in [
            item for item in handlers if (item.__module__, item.__name__) == (handler.__module__, handler.__name__)
        ]:
            handlers.remove(existing)
