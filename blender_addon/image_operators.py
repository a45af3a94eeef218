"""Operators for scenes made from one picture: New scene from image, Split by depth edges, Camera move.

New scene from image reads a depth file saved with numpy.save and builds the proxy scene
(`image_scene`) at once, or asks the scene's server for depth in the background (`depth_request`;
the panel shows the wait, and the scene appears when the answer does).
"""

from __future__ import annotations

import functools
import os

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from das_core.errors import DasError
from das_core.tracking.camera_motion import camera_path, orbit_path
from das_core.tracking.proxy import (
    DEFAULT_FOV_DEG,
    DEFAULT_STEP,
    RELATIVE_MEDIAN_DEPTH,
    build_proxy,
    intrinsics_from_fov,
    read_depth,
)
from das_core.tracking.window import DAS_WINDOW
from das_core.wire.protocol import DepthResult

from . import jobs
from .depth_request import forget, request_depth
from .image_scene import PART_ATTRIBUTE, build_image_scene, keyframe_camera, split_by_parts
from .operators import connection_for
from .reference_render import load_image_rgb

# Preset: (label, description, DaS camera-motion string with {a} for the amount, or None for the orbit).
CAMERA_MOVES = {
    "DOLLY_IN": ("Dolly in", "Move towards the scene by Amount units", "trans 0 0 -{a}"),
    "DOLLY_OUT": ("Dolly out", "Move away from the scene by Amount units", "trans 0 0 {a}"),
    "ORBIT_LEFT": ("Orbit left", "Circle Amount degrees to the left around the subject", None),
    "ORBIT_RIGHT": ("Orbit right", "Circle Amount degrees to the right around the subject", None),
    "PAN_LEFT": ("Pan left", "Turn Amount degrees to the left", "rot y {a}"),
    "PAN_RIGHT": ("Pan right", "Turn Amount degrees to the right", "rot y -{a}"),
    "CRANE_UP": ("Crane up", "Rise by Amount units", "trans 0 {a} 0"),
    "CRANE_DOWN": ("Crane down", "Sink by Amount units", "trans 0 -{a} 0"),
}


class DAS_OT_image_scene(bpy.types.Operator):
    """Make a new scene from one picture: its depth as textured 3D objects and a camera that sees the picture"""

    bl_idname = "das.image_scene"
    bl_label = "New scene from image"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Image", subtype="FILE_PATH")
    depth_file: StringProperty(
        name="Depth file",
        description="Depth saved with numpy.save ([H, W]); empty: ask the server",
        subtype="FILE_PATH",
    )
    metric: BoolProperty(name="Metric depth file", description="The depth file is in metres", default=True)
    fov: FloatProperty(name="Field of view", description="Horizontal, degrees", default=DEFAULT_FOV_DEG, min=1, max=170)
    step: IntProperty(name="Cell size", description="Pixels per mesh cell side", default=DEFAULT_STEP, min=1, max=64)
    split: BoolProperty(name="Split by depth edges", description="One object per depth part", default=True)

    def invoke(self, context: bpy.types.Context, event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        # Plain values only: the operator and the scenes may be gone when the server's depth arrives.
        path, source = bpy.path.abspath(self.filepath), context.scene.session_uid
        build = functools.partial(
            _new_scene, path, step=self.step, split=self.split, server=context.scene.das.server, source=source
        )
        try:
            image = load_image_rgb(path)
            if self.depth_file:
                depth = read_depth(bpy.path.abspath(self.depth_file), image.shape[1], image.shape[0])
                scene = build(depth, self.metric, self.fov)
                self.report({"INFO"}, f"scene {scene.name!r} from {os.path.basename(path)}")
                return {"FINISHED"}
            connection = connection_for(context)
        except DasError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        fov = self.fov

        def on_depth(result: DepthResult) -> None:
            build(result.depth, result.metric, result.fov_deg or fov)

        def on_error(message: str) -> None:
            jobs.ERRORS[source] = f"New scene from image: {message}"
            print(f"das: New scene from image: {message}")

        jobs.ERRORS.pop(source, None)
        request_depth(connection, image, os.path.basename(path), on_depth, on_error)
        self.report({"INFO"}, f"asking the server for the depth of {os.path.basename(path)}")
        return {"FINISHED"}


def _new_scene(
    path: str, depth: np.ndarray, metric: bool, fov: float, *, step: int, split: bool, server: str, source: int
) -> bpy.types.Scene:
    """The proxy scene of `path`, shown in the windows that showed scene `source` (a session_uid). Main thread."""
    height, width = depth.shape[:2]
    proxy = build_proxy(depth, intrinsics_from_fov(width, height, fov), metric=metric, step=step)
    scene = bpy.data.scenes.new(os.path.splitext(os.path.basename(path))[0] or "image")
    scene.das.server = server
    build_image_scene(scene, path, proxy, split=split)
    for window in bpy.context.window_manager.windows:
        if window.scene.session_uid == source:
            window.scene = scene
    return scene


class DAS_OT_split_by_depth(bpy.types.Operator):
    """Split the selected image proxy into one object per part between depth edges"""

    bl_idname = "das.split_by_depth"
    bl_label = "Split into objects by depth edges"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and PART_ATTRIBUTE in obj.data.attributes

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            objects = split_by_parts(context.active_object)
        except DasError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"split into {len(objects)} object(s)")
        return {"FINISHED"}


class DAS_OT_camera_move(bpy.types.Operator):
    """Keyframe a common camera move over the shot, from where the scene camera is at the first frame"""

    bl_idname = "das.camera_move"
    bl_label = "Camera move"
    bl_options = {"REGISTER", "UNDO"}

    move: EnumProperty(name="Move", items=[(key, *value[:2]) for key, value in CAMERA_MOVES.items()])
    amount: FloatProperty(name="Amount", description="Units for dolly and crane, degrees otherwise", default=0.3)
    motion: StringProperty(
        name="DaS motion", description="A DaS camera-motion string instead of the preset (trans, rot, spiral)"
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and context.scene.camera is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        frames = scene.frame_end - scene.frame_start + 1 if scene.frame_end > scene.frame_start else DAS_WINDOW.frames
        try:
            path = self._path(frames)
        except DasError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        keyframe_camera(scene, scene.camera, path)
        return {"FINISHED"}

    def _path(self, frames: int) -> np.ndarray:
        if self.motion.strip():
            return camera_path(self.motion, frames)
        template = CAMERA_MOVES[self.move][2]
        if template is None:  # orbit around the subject at the proxy's typical depth
            sign = 1.0 if self.move == "ORBIT_RIGHT" else -1.0
            return orbit_path(sign * self.amount, RELATIVE_MEDIAN_DEPTH, frames)
        return camera_path(template.format(a=self.amount), frames)


CLASSES = (DAS_OT_image_scene, DAS_OT_split_by_depth, DAS_OT_camera_move)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    forget()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
