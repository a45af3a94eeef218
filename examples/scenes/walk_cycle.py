"""Example scene: a mannequin mesh driven by an armature walks across the frame (two strides).

Run: `python examples/scenes/walk_cycle.py OUT.blend` (bpy module) or
`blender -b --python examples/scenes/walk_cycle.py -- OUT.blend`.
The body is one mesh; each part is skinned rigidly to one bone, like a jointed wooden mannequin.
"""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy
import scene_setup

# bone name -> (head, tail, parent); the character faces -Y in its rest pose.
BONES = {
    "hips": ((0, 0, 0.92), (0, 0, 1.1), None),
    "spine": ((0, 0, 1.1), (0, 0, 1.5), "hips"),
    "thigh.L": ((0.12, 0, 0.92), (0.12, 0, 0.5), "hips"),
    "shin.L": ((0.12, 0, 0.5), (0.12, 0, 0.08), "thigh.L"),
    "thigh.R": ((-0.12, 0, 0.92), (-0.12, 0, 0.5), "hips"),
    "shin.R": ((-0.12, 0, 0.5), (-0.12, 0, 0.08), "thigh.R"),
    "upperarm.L": ((0.3, 0, 1.44), (0.3, 0, 1.14), "spine"),
    "forearm.L": ((0.3, 0, 1.14), (0.3, 0, 0.84), "upperarm.L"),
    "upperarm.R": ((-0.3, 0, 1.44), (-0.3, 0, 1.14), "spine"),
    "forearm.R": ((-0.3, 0, 1.14), (-0.3, 0, 0.84), "upperarm.R"),
}
STRIDE_FRAMES = 24  # one full cycle (left + right step)
WALK_SPEED = 1.6 / STRIDE_FRAMES  # metres per frame


def body_parts() -> list[tuple[str, list, list]]:
    """(bone, vertices, faces) of each rigid body part, in the rest pose."""
    parts = [
        ("hips", *scene_setup.box((0, 0, 1.0), (0.36, 0.2, 0.22))),
        ("spine", *scene_setup.cylinder(0.17, (0, 0, 1.1), (0, 0, 1.48), segments=10, rings=2)),
        ("spine", *scene_setup.cylinder(0.11, (0, 0, 1.53), (0, 0, 1.78), segments=10, rings=3)),
    ]
    for side, x in (("L", 1), ("R", -1)):
        parts += [
            (f"thigh.{side}", *scene_setup.cylinder(0.075, (0.12 * x, 0, 0.5), (0.12 * x, 0, 0.95))),
            (f"shin.{side}", *scene_setup.cylinder(0.06, (0.12 * x, 0, 0.1), (0.12 * x, 0, 0.52))),
            (f"shin.{side}", *scene_setup.box((0.12 * x, -0.06, 0.04), (0.11, 0.26, 0.08))),
            (f"upperarm.{side}", *scene_setup.cylinder(0.05, (0.3 * x, 0, 1.12), (0.3 * x, 0, 1.46))),
            (f"forearm.{side}", *scene_setup.cylinder(0.045, (0.3 * x, 0, 0.8), (0.3 * x, 0, 1.15))),
        ]
    return parts


def build_character() -> bpy.types.Object:
    """The armature with the body mesh parented and skinned to it; returns the armature object."""
    armature = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", armature)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name, (head, tail, parent) in BONES.items():
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail = head, tail
        bone.roll = 0.0
        if parent:
            bone.parent = armature.edit_bones[parent]
            bone.use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")

    vertices, faces, owners = [], [], []
    for bone, part_vertices, part_faces in body_parts():
        offset = len(vertices)
        vertices += part_vertices
        faces += [tuple(i + offset for i in face) for face in part_faces]
        owners += [bone] * len(part_vertices)
    body = scene_setup.add_mesh("Mannequin", vertices, faces, (0.8, 0.55, 0.35))
    for name in BONES:
        group = body.vertex_groups.new(name=name)
        group.add([i for i, owner in enumerate(owners) if owner == name], 1.0, "REPLACE")
    body.parent = rig
    body.modifiers.new("Armature", "ARMATURE").object = rig
    return rig


def animate_walk(rig: bpy.types.Object, start_y: float) -> None:
    """Key a walk cycle on every frame: legs and arms swing in opposition, knees bend, hips bob."""
    pose = rig.pose.bones
    for bone in pose:
        bone.rotation_mode = "XYZ"
    for frame in range(scene_setup.FRAME_START, scene_setup.FRAME_END + 1):
        phase = 2 * math.pi * (frame - scene_setup.FRAME_START) / STRIDE_FRAMES
        swing = 0.45 * math.sin(phase)
        pose["thigh.L"].rotation_euler.x = swing
        pose["thigh.R"].rotation_euler.x = -swing
        pose["shin.L"].rotation_euler.x = -0.7 * max(0.0, math.sin(phase - 1.2))
        pose["shin.R"].rotation_euler.x = -0.7 * max(0.0, math.sin(phase + math.pi - 1.2))
        pose["upperarm.L"].rotation_euler.x = -0.6 * swing
        pose["upperarm.R"].rotation_euler.x = 0.6 * swing
        pose["forearm.L"].rotation_euler.x = 0.25 + 0.2 * math.sin(phase)
        pose["forearm.R"].rotation_euler.x = 0.25 - 0.2 * math.sin(phase)
        pose["hips"].location.y = 0.03 * math.cos(2 * phase)  # bone y points up: the bob
        pose["spine"].rotation_euler.y = 0.08 * math.sin(phase)  # shoulders counter-rotate
        for bone in pose:
            bone.keyframe_insert("rotation_euler", frame=frame)
            bone.keyframe_insert("location", frame=frame)
        rig.location = (0.0, start_y - WALK_SPEED * (frame - scene_setup.FRAME_START), 0.0)
        rig.keyframe_insert("location", frame=frame)


def main() -> None:
    scene = scene_setup.new_scene()
    scene_setup.add_ground()
    rig = build_character()
    animate_walk(rig, start_y=1.6)
    scene_setup.add_camera(location=(3.4, -0.6, 1.3), target=(0.0, -0.1, 0.8))
    scene.frame_set(scene_setup.FRAME_START)
    scene_setup.save(scene_setup.output_path("walk_cycle.blend"))


if __name__ == "__main__":
    main()
