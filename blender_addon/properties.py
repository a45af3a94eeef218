"""Settings: `scene.das` (what to generate) and the add-on preferences (where and how to connect)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from das_core.tracking.shot import FRAMES_EVERY, FRAMES_MODEL

DEFAULT_SERVER = "tcp://127.0.0.1:5555"
# What a finished shot's strip holds (`das_core.tracking.shot.scene_frames`).
FRAMES_ITEMS = (
    (
        FRAMES_EVERY,
        "Every frame",
        "One distinct frame per timeline frame: the model's frames, and in-betweens made from the exact motion",
    ),
    (FRAMES_MODEL, "Model frames", "Only the frames the model makes at its frame rate, each held until the next"),
)


class DasPreferences(bpy.types.AddonPreferences):
    """The default server and the CURVE keys for servers outside this machine."""

    bl_idname = __package__

    default_server: StringProperty(
        name="Default server",
        description="ZeroMQ address of the DaS server used when a scene names none",
        default=DEFAULT_SERVER,
    )
    timeout: FloatProperty(
        name="Timeout",
        description="Seconds to wait for the server before reporting it unreachable",
        default=10.0,
        min=1.0,
        max=300.0,
    )
    server_public_key: StringProperty(
        name="Server public key", description="The server's CURVE public key (Z85, 40 characters)"
    )
    client_public_key: StringProperty(name="Client public key", description="This client's CURVE public key (Z85)")
    client_secret_key: StringProperty(
        name="Client secret key", description="This client's CURVE secret key (Z85)", subtype="PASSWORD"
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "default_server")
        layout.prop(self, "timeout")
        box = layout.box()
        box.label(text="CURVE encryption (needed for servers on other machines; `das keygen` makes keys)")
        box.prop(self, "server_public_key")
        box.prop(self, "client_public_key")
        box.prop(self, "client_secret_key")


class DasJobRecord(bpy.types.PropertyGroup):
    """A generation submitted from this file, saved with it so it is followed again after Blender restarts."""

    job_id: StringProperty(name="Job", description="The job's id on its server")
    server: StringProperty(name="Server", description="Address of the server that runs the job")
    sequencer_scene: PointerProperty(
        type=bpy.types.Scene, name="Sequencer scene", description="Where the strip lands (recorded at submit time)"
    )
    frame_start: IntProperty(description="First timeline frame the strip covers (every one of them was exported)")
    frame_end: IntProperty(description="Last timeline frame the strip covers")
    shot_plan: StringProperty(
        description="The shot's plan as JSON (das_core.tracking.shot.ShotPlan): its timeline frames, the keys "
        "(timeline indices of the model's frames) and windows; empty until the job's thread has made it"
    )
    frames: EnumProperty(name="Frames", items=FRAMES_ITEMS, default=FRAMES_EVERY)
    prompt: StringProperty(name="Prompt")
    directory: StringProperty(
        description="The job's folder in the cache folder (frames/, shot/, tracking/, tracks.npz)", subtype="DIR_PATH"
    )
    add_tracking_strip: BoolProperty(default=True)
    state: StringProperty(
        name="State", description="The job's last known state, a value of blender_addon.jobs.JobState"
    )


class DasSceneSettings(bpy.types.PropertyGroup):
    """What to generate for this scene: prompt, seed and steps, frame range, the frames to make and the reference image."""

    server: StringProperty(
        name="Server", description="DaS server address (tcp://host:port); empty uses the add-on preferences"
    )
    prompt: StringProperty(name="Prompt", description="What the video should show")
    negative_prompt: StringProperty(
        name="Negative prompt", description="What the video should avoid; empty uses the server's default"
    )
    seed: IntProperty(name="Seed", description="Random seed; the same seed gives the same video", default=42, min=0)
    steps: IntProperty(
        name="Steps", description="Denoising steps (more is slower and finer)", default=50, min=1, max=500
    )
    guidance: FloatProperty(
        name="Guidance", description="Classifier-free guidance scale", default=6.0, min=0.0, max=30.0
    )
    use_scene_range: BoolProperty(
        name="Scene frame range", description="Export the scene's frame range; off: choose a range", default=True
    )
    frame_start: IntProperty(name="Start", description="First frame of the exported range", default=1)
    frame_end: IntProperty(name="End", description="Last frame of the exported range", default=250)
    frames: EnumProperty(
        name="Frames",
        description="What the strip holds: every timeline frame of the range, or the model's frames only (held)",
        items=FRAMES_ITEMS,
        default=FRAMES_EVERY,
    )
    tracking_mode: EnumProperty(
        name="Tracking video",
        items=(
            ("mesh", "Mesh", "Colour-interpolated surfaces with a depth test (DaS mesh-to-video)"),
            ("points", "Points", "One square per vertex, far to near (tracker style)"),
        ),
        default="mesh",
    )
    reference: EnumProperty(
        name="Reference image",
        items=(
            ("SCENE", "Render (scene engine)", "Render the first exported frame with the scene's render engine"),
            ("WORKBENCH", "Quick Workbench", "Render the first exported frame with Workbench (fast preview)"),
            ("EEVEE", "Eevee", "Render the first exported frame with Eevee"),
            ("CYCLES", "Cycles", "Render the first exported frame with Cycles (with the scene's Cycles settings)"),
            ("IMAGE", "Image file", "Use an image you choose, e.g. a repainted first frame"),
        ),
        default="SCENE",
    )
    reference_image: StringProperty(name="Image", description="Reference image file", subtype="FILE_PATH")
    output_dir: StringProperty(
        name="Cache folder",
        description="Where frames are written; empty: a das_cache folder next to the .blend file",
        subtype="DIR_PATH",
    )
    add_tracking_strip: BoolProperty(
        name="Add tracking strip", description="Also add the tracking video above the generated strip", default=True
    )
    jobs: CollectionProperty(type=DasJobRecord, name="Jobs", description="Generations submitted from this scene")


CLASSES = (DasPreferences, DasJobRecord, DasSceneSettings)


def preferences(context: bpy.types.Context | None = None) -> DasPreferences | None:
    """The add-on preferences, or None when the add-on runs as a plain package (tests, scripts)."""
    addon = (context or bpy.context).preferences.addons.get(__package__)
    return addon.preferences if addon else None


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.das = PointerProperty(type=DasSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.das
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
