"""Example scene: the camera orbits a quarter turn around static objects on a ground grid.

Run: `python examples/scenes/camera_orbit.py OUT.blend` (bpy module) or
`blender -b --python examples/scenes/camera_orbit.py -- OUT.blend`.
Only the camera moves, so the tracking video shows pure camera motion (parallax).
"""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy
import scene_setup

ORBIT_DEGREES = 90.0


def torus(
    centre: scene_setup.Vec3, major: float, minor: float, segments: int = 20, sides: int = 8
) -> tuple[list, list]:
    """Vertices and faces of a torus lying flat (axis along z)."""
    cx, cy, cz = centre
    vertices = []
    for s in range(segments):
        phi = 2 * math.pi * s / segments
        for k in range(sides):
            theta = 2 * math.pi * k / sides
            ring = major + minor * math.cos(theta)
            vertices.append((cx + ring * math.cos(phi), cy + ring * math.sin(phi), cz + minor * math.sin(theta)))
    faces = []
    for s in range(segments):
        for k in range(sides):
            a = s * sides + k
            b = s * sides + (k + 1) % sides
            c = ((s + 1) % segments) * sides + (k + 1) % sides
            d = ((s + 1) % segments) * sides + k
            faces.append((a, d, c, b))
    return vertices, faces


def cone(base: tuple[float, float, float], radius: float, height: float, segments: int = 16) -> tuple[list, list]:
    """Vertices and faces of a cone standing on `base`."""
    bx, by, bz = base
    angles = [2 * math.pi * s / segments for s in range(segments)]
    vertices = [(bx + radius * math.cos(angle), by + radius * math.sin(angle), bz) for angle in angles]
    vertices.append((bx, by, bz + height))
    faces = [(s, (s + 1) % segments, segments) for s in range(segments)]
    faces.append(tuple(reversed(range(segments))))
    return vertices, faces


def add_props() -> None:
    """Static objects of different shapes, heights and distances, so parallax is easy to see."""
    scene_setup.add_mesh("Crate", *scene_setup.box((0.0, 0.0, 0.5), (1.0, 1.0, 1.0)), (0.75, 0.45, 0.25))
    scene_setup.add_mesh("Ball", *scene_setup.sphere((1.6, -1.1, 0.55), 0.55), (0.3, 0.5, 0.85))
    scene_setup.add_mesh("Cone", *cone((-1.5, 1.2, 0.0), 0.5, 1.4), (0.85, 0.75, 0.3))
    scene_setup.add_mesh("Ring", *torus((-1.4, -1.5, 0.25), 0.55, 0.22), (0.8, 0.3, 0.35))
    pillar = scene_setup.cylinder(0.3, (1.3, 1.8, 0.0), (1.3, 1.8, 2.2), segments=12, rings=4)
    scene_setup.add_mesh("Pillar", *pillar, (0.6, 0.65, 0.6))


def animate_orbit(camera: bpy.types.Object) -> None:
    """Parent the camera to a pivot at the origin and turn the pivot ORBIT_DEGREES at constant speed.

    Every frame is keyed, so the motion does not depend on the keyframe interpolation default.
    """
    pivot = bpy.data.objects.new("OrbitPivot", None)
    bpy.context.scene.collection.objects.link(pivot)
    camera.parent = pivot
    frames = scene_setup.FRAME_END - scene_setup.FRAME_START
    for frame in range(scene_setup.FRAME_START, scene_setup.FRAME_END + 1):
        pivot.rotation_euler.z = math.radians(ORBIT_DEGREES) * (frame - scene_setup.FRAME_START) / frames
        pivot.keyframe_insert("rotation_euler", index=2, frame=frame)


def main() -> None:
    scene = scene_setup.new_scene()
    scene_setup.add_ground()
    add_props()
    camera = scene_setup.add_camera(location=(6.5, -4.5, 3.2), target=(0.0, 0.0, 0.6), lens=32.0)
    animate_orbit(camera)
    scene.frame_set(scene_setup.FRAME_START)
    scene_setup.save(scene_setup.output_path("camera_orbit.blend"))


if __name__ == "__main__":
    main()
