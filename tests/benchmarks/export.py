"""Benchmark: export_tracks on a 100k-vertex animated mesh over 49 frames (target: under 2 s).

Run: python tests/benchmarks/export.py [--vertices 100000] [--repeats 3]
The mesh is a grid deformed by a two-bone armature and a wave modifier, moving under a zooming camera,
so every frame re-evaluates the deformation as an artist's rig would.
"""

from __future__ import annotations

import argparse
import math
import time

import bpy
import numpy as np

from blender_addon.export import export_tracks


def build_scene(vertices: int) -> bpy.types.Scene:
    """A `vertices`-vertex grid with an armature and a wave modifier, animated over 1..120, and a camera."""
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    scene = bpy.context.scene
    for obj in list(scene.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    side = int(math.sqrt(vertices))
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=side - 1, y_subdivisions=side - 1, size=4.0)
    grid = bpy.context.active_object
    bpy.ops.object.armature_add(location=(0.0, -2.0, 0.0))
    rig = bpy.context.active_object
    rig.rotation_euler = (-math.pi / 2, 0.0, 0.0)
    modifier = grid.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    group = grid.vertex_groups.new(name="Bone")
    group.add(list(range(len(grid.data.vertices))), 1.0, "REPLACE")
    wave = grid.modifiers.new("Wave", "WAVE")
    wave.height, wave.width = 0.3, 1.0
    bone = rig.pose.bones[0]
    for frame, angle in ((1, 0.0), (120, 0.6)):
        bone.rotation_euler = (angle, 0.0, 0.0)
        bone.keyframe_insert("rotation_euler", frame=frame)
        scene.camera.data.lens = 35.0 + angle * 20.0
        scene.camera.data.keyframe_insert("lens", frame=frame)
    scene.frame_start, scene.frame_end = 1, 120
    scene.frame_set(1)
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--baseline-frames", type=int, default=2, help="frames to time the per-vertex Python loop on (0: skip)"
    )
    args = parser.parse_args()
    scene = build_scene(args.vertices)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        tracks = export_tracks(scene, samples=49)
        times.append(time.perf_counter() - start)
    print(
        f"export_tracks: {tracks.num_points} vertices, {len(tracks.faces)} triangles, {tracks.num_frames} frames: "
        f"best {min(times):.3f} s, median {float(np.median(times)):.3f} s over {args.repeats} runs"
    )
    if args.baseline_frames:
        per_frame = per_vertex_loop_seconds(scene, args.baseline_frames)
        print(
            f"per-vertex Python loop (matrix_world @ v.co): {per_frame:.3f} s per frame, ~{per_frame * 49:.1f} s for 49 frames"
        )


def per_vertex_loop_seconds(scene: bpy.types.Scene, frames: int) -> float:
    """The obvious way, for comparison: evaluate, to_mesh(), transform each vertex in Python."""
    grid = next(obj for obj in scene.objects if obj.type == "MESH")
    start = time.perf_counter()
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        evaluated = grid.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        matrix = evaluated.matrix_world
        _ = [tuple(matrix @ vertex.co) for vertex in mesh.vertices]
        evaluated.to_mesh_clear()
    return (time.perf_counter() - start) / frames


if __name__ == "__main__":
    main()
