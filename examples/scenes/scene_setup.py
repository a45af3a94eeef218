"""What every example scene shares: an empty 720x480 Workbench scene, a ground grid, a camera, saving.

The example scripts import this from their own folder. They run under the `bpy` module
(`python examples/scenes/walk_cycle.py OUT.blend`) or a Blender executable
(`blender -b --python examples/scenes/walk_cycle.py -- OUT.blend`).
"""

from __future__ import annotations

import math
import os
import sys

import bpy

FRAME_START = 1
FRAME_END = 49  # 49 frames: one tracking-video frame per scene frame
FPS = 24
Vec3 = tuple[float, float, float]


def new_scene() -> bpy.types.Scene:
    """Empty the file and return a scene set up for 720x480 Workbench renders of frames 1..49."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = FRAME_START
    scene.frame_end = FRAME_END
    scene.frame_set(FRAME_START)
    scene.render.fps = FPS
    scene.render.resolution_x = 720
    scene.render.resolution_y = 480
    scene.render.resolution_percentage = 100
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "OBJECT"
    shading.show_shadows = True
    shading.show_cavity = True
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.06, 0.08)
    scene.world = world
    return scene


def add_mesh(name: str, vertices: list, faces: list, color: tuple[float, float, float]) -> bpy.types.Object:
    """Link a new mesh object built from vertex and face lists, with a Workbench object colour."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices, [], faces)
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj.color = (*color, 1.0)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def add_ground(size: float = 24.0, cuts: int = 12) -> bpy.types.Object:
    """A flat grid on z=0; subdivided so its on-screen vertices carry their own tracking colours."""
    step = size / cuts
    vertices = [(-size / 2 + i * step, -size / 2 + j * step, 0.0) for j in range(cuts + 1) for i in range(cuts + 1)]
    faces = [
        (j * (cuts + 1) + i, j * (cuts + 1) + i + 1, (j + 1) * (cuts + 1) + i + 1, (j + 1) * (cuts + 1) + i)
        for j in range(cuts)
        for i in range(cuts)
    ]
    return add_mesh("Ground", vertices, faces, (0.45, 0.45, 0.42))


def add_camera(location: Vec3, target: Vec3, lens: float = 30.0) -> bpy.types.Object:
    """A camera named "Camera" at `location` aimed at `target` (Track To), made the scene camera."""
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.lens = lens
    camera.location = location
    bpy.context.scene.collection.objects.link(camera)
    aim = bpy.data.objects.new("CameraTarget", None)
    aim.location = target
    bpy.context.scene.collection.objects.link(aim)
    track = camera.constraints.new("TRACK_TO")
    track.target = aim
    track.track_axis = "TRACK_NEGATIVE_Z"
    track.up_axis = "UP_Y"
    bpy.context.scene.camera = camera
    return camera


def cylinder(radius: float, bottom: Vec3, top: Vec3, segments: int = 8, rings: int = 3) -> tuple[list, list]:
    """Vertices and faces of a closed vertical-ish tube from `bottom` to `top` (rings give bending room)."""
    vertices, faces = [], []
    for r in range(rings + 1):
        t = r / rings
        centre = [bottom[k] + (top[k] - bottom[k]) * t for k in range(3)]
        for s in range(segments):
            angle = 2 * math.pi * s / segments
            vertices.append((centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle), centre[2]))
    for r in range(rings):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    faces.append(tuple(reversed(range(segments))))
    faces.append(tuple(range(rings * segments, (rings + 1) * segments)))
    return vertices, faces


def box(centre: tuple[float, float, float], size: tuple[float, float, float]) -> tuple[list, list]:
    """Vertices and faces of an axis-aligned box."""
    cx, cy, cz = centre
    hx, hy, hz = (s / 2 for s in size)
    vertices = [(cx + x * hx, cy + y * hy, cz + z * hz) for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return vertices, faces


def sphere(centre: tuple[float, float, float], radius: float, segments: int = 16, rings: int = 8) -> tuple[list, list]:
    """Vertices and faces of a UV sphere (quads, triangle fans at the poles)."""
    cx, cy, cz = centre
    vertices = [(cx, cy, cz + radius)]
    for r in range(1, rings):
        theta = math.pi * r / rings
        for s in range(segments):
            phi = 2 * math.pi * s / segments
            vertices.append(
                (
                    cx + radius * math.sin(theta) * math.cos(phi),
                    cy + radius * math.sin(theta) * math.sin(phi),
                    cz + radius * math.cos(theta),
                )
            )
    vertices.append((cx, cy, cz - radius))
    bottom = len(vertices) - 1
    faces = [(0, 1 + s, 1 + (s + 1) % segments) for s in range(segments)]
    for r in range(rings - 2):
        row, below = 1 + r * segments, 1 + (r + 1) * segments
        faces += [(row + s, below + s, below + (s + 1) % segments, row + (s + 1) % segments) for s in range(segments)]
    last = 1 + (rings - 2) * segments
    faces += [(last + (s + 1) % segments, last + s, bottom) for s in range(segments)]
    return vertices, faces


def save(path: str) -> None:
    """Save the file (compressed, so the committed examples stay small; no .blend1 backup)."""
    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(path), compress=True)
    print(f"saved {path}")


def output_path(default: str) -> str:
    """The .blend path from the command line: after `--` under Blender, else the first argument."""
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    return argv[0] if argv else default
