"""Benchmark: export_tracks on a ~100k-vertex animated curve (bevelled) and text over 49 frames (target: under 2 s).

Run: python tests/benchmarks/export_nonmesh.py [--repeats 3]
A bezier circle bevelled into a tube whose bevel depth and turn are animated, so Blender rebuilds the
curve's mesh every frame, plus a line of extruded text on an animated empty. The time includes
Blender's own re-evaluation of the curve and text each frame, as the export of a real scene would.
"""

from __future__ import annotations

import argparse
import time

import bpy
import numpy as np

from blender_addon.export import export_tracks


def build_scene() -> bpy.types.Scene:
    """The tube (resolution 1024 x bevel ring 24, about 98k vertices), a text line and the factory camera."""
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    scene = bpy.context.scene
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    bpy.ops.curve.primitive_bezier_circle_add(radius=2.0)
    tube = bpy.context.active_object
    tube.data.resolution_u, tube.data.bevel_resolution = 1024, 10
    bpy.ops.object.text_add(location=(-2.0, 0.0, 1.0))
    text = bpy.context.active_object
    text.data.body, text.data.extrude = "Diffusion as Shader", 0.05
    mover = bpy.data.objects.new("Mover", None)
    scene.collection.objects.link(mover)
    text.parent = mover
    for frame, depth, angle in ((1, 0.1, 0.0), (120, 0.3, 0.8)):
        tube.data.bevel_depth, tube.rotation_euler.z, mover.location.y = depth, angle, angle
        tube.data.keyframe_insert("bevel_depth", frame=frame)
        tube.keyframe_insert("rotation_euler", frame=frame)
        mover.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, 120
    scene.frame_set(1)
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scene = build_scene()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        tracks = export_tracks(scene, samples=49)
        times.append(time.perf_counter() - start)
    print(
        f"export_tracks {tracks.extra['objects']}: {tracks.num_points} vertices, {len(tracks.faces)} triangles, "
        f"{tracks.num_frames} frames: best {min(times):.3f} s, median {float(np.median(times)):.3f} s over {args.repeats} runs"
    )
    frames = 49
    start = time.perf_counter()
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
    print(
        f"scene.frame_set alone (Blender re-evaluating the curve and text): {time.perf_counter() - start:.3f} s for {frames} frames"
    )


if __name__ == "__main__":
    main()
