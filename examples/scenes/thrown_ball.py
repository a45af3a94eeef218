"""Example scene: a ball is thrown across the frame, bounces twice and rolls on, past static crates.

Run: `python examples/scenes/thrown_ball.py OUT.blend` (bpy module) or
`blender -b --python examples/scenes/thrown_ball.py -- OUT.blend`.
The flight is integrated frame by frame (gravity, a lossy bounce) and keyed on every frame.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy
import scene_setup

RADIUS = 0.3
GRAVITY = 9.81
BOUNCE = 0.6  # vertical speed kept after a bounce
FRICTION = 0.85  # horizontal speed kept after a bounce


def trajectory(start: scene_setup.Vec3, velocity: scene_setup.Vec3, frames: int, fps: float) -> list[tuple]:
    """(location, roll angle) per frame of a ball thrown from `start`, bouncing on z=0 (small sub-steps)."""
    (x, y, z), (vx, vy, vz) = start, velocity
    roll, samples, substeps = 0.0, [], 20
    dt = 1.0 / (fps * substeps)
    for _ in range(frames):
        samples.append(((x, y, z), roll))
        for _ in range(substeps):
            vz -= GRAVITY * dt
            x, y, z = x + vx * dt, y + vy * dt, z + vz * dt
            if z < RADIUS and vz < 0:
                z, vz, vx, vy = RADIUS, -vz * BOUNCE, vx * FRICTION, vy * FRICTION
            if z <= RADIUS + 1e-3:
                roll += (vx**2 + vy**2) ** 0.5 * dt / RADIUS  # rolling on the ground
            else:
                roll += 0.6 * dt * 2.0  # a slow spin in flight
    return samples


def main() -> None:
    scene = scene_setup.new_scene()
    scene_setup.add_ground()
    scene_setup.add_mesh("CrateBig", *scene_setup.box((1.2, 1.6, 0.45), (0.9, 0.9, 0.9)), (0.7, 0.45, 0.25))
    scene_setup.add_mesh("CrateSmall", *scene_setup.box((2.0, 1.0, 0.3), (0.6, 0.6, 0.6)), (0.6, 0.4, 0.22))
    post = scene_setup.cylinder(0.12, (-1.8, 1.4, 0.0), (-1.8, 1.4, 1.6), segments=10)
    scene_setup.add_mesh("Post", *post, (0.55, 0.6, 0.55))
    ball_mesh = scene_setup.sphere((0.0, 0.0, 0.0), RADIUS, segments=14, rings=8)
    ball = scene_setup.add_mesh("Ball", *ball_mesh, (0.85, 0.25, 0.2))
    ball.rotation_mode = "XYZ"
    frames = scene_setup.FRAME_END - scene_setup.FRAME_START + 1
    path = trajectory(start=(-1.9, 0.3, 0.9), velocity=(2.4, -0.2, 3.6), frames=frames, fps=scene_setup.FPS)
    for index, (location, roll) in enumerate(path):
        frame = scene_setup.FRAME_START + index
        ball.location = location
        ball.rotation_euler.y = roll
        ball.keyframe_insert("location", frame=frame)
        ball.keyframe_insert("rotation_euler", frame=frame)
    scene_setup.add_camera(location=(0.3, -4.6, 1.4), target=(0.3, 0.4, 0.6), lens=30.0)
    scene.frame_set(scene_setup.FRAME_START)
    bpy.context.view_layer.update()
    scene_setup.save(scene_setup.output_path("thrown_ball.blend"))


if __name__ == "__main__":
    main()
