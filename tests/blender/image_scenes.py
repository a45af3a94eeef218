"""A textured scene rendered by Blender and its depth, for the image-to-scene tests and the README picture."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector

from blender_addon.reference_render import load_image_rgb, render_reference
from das_core.tracking.camera import blender_camera_to_opencv


def emissive(name: str, scale: float, colour_offset: float) -> bpy.types.Material:
    """A smooth procedural emission texture: renders the same under any light, with one sample."""
    material = bpy.data.materials.new(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    noise = nodes.new("ShaderNodeTexNoise")
    noise.noise_dimensions = "4D"
    noise.inputs["Scale"].default_value = scale
    noise.inputs["W"].default_value = colour_offset
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(noise.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def exact_cycles(scene: bpy.types.Scene) -> None:
    """One centred sample per pixel, no denoising, Standard view: pixel = the surface's colour at its centre."""
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.filter_width = 0.01
    scene.cycles.device = "CPU"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    if scene.world is None:
        scene.world = bpy.data.worlds.new("black")
    scene.world.color = (0.0, 0.0, 0.0)


def build_box_and_wall(scene: bpy.types.Scene, width: int = 96, height: int = 64) -> bpy.types.Object:
    """A textured box in front of a textured wall, seen by a camera at a slight angle; returns the box."""
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 4, 0), rotation=(math.pi / 2, 0, 0))
    bpy.context.object.data.materials.append(emissive("wall", 3.0, 0.3))
    bpy.ops.mesh.primitive_cube_add(size=1.4, location=(0.3, 0, 0.1), rotation=(0.2, 0, 0.5))
    box = bpy.context.object
    box.data.materials.append(emissive("box", 6.0, 2.7))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.4, -5.5, 0.6)
    camera.rotation_euler = (math.radians(84), 0.0, math.radians(4))
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    exact_cycles(scene)
    return box


def render(scene: bpy.types.Scene, path, frame: int = 0) -> np.ndarray:
    return load_image_rgb(render_reference(scene, path, frame=frame, engine="CYCLES"))


def intrinsics(scene: bpy.types.Scene) -> np.ndarray:
    data, render = scene.camera.data, scene.render
    _, camera = blender_camera_to_opencv(
        np.array(scene.camera.matrix_world), data.lens, data.sensor_width, data.sensor_height, data.sensor_fit,
        data.shift_x, data.shift_y, render.resolution_x, render.resolution_y,
    )  # fmt: skip
    return camera


def ray_depth(scene: bpy.types.Scene, hits_only: bool = False) -> np.ndarray:
    """z depth through each pixel centre by Blender's ray casts (NaN where nothing is hit)."""
    depsgraph = scene.view_layers[0].depsgraph
    depsgraph.update()
    camera = intrinsics(scene)
    matrix = np.array(scene.camera.matrix_world)
    width, height = scene.render.resolution_x, scene.render.resolution_y
    origin = Vector(matrix[:3, 3])
    depth = np.full((height, width), np.nan)
    for row in range(height):
        for col in range(width):
            ray = np.array(
                [(col + 0.5 - camera[0, 2]) / camera[0, 0], -(row + 0.5 - camera[1, 2]) / camera[1, 1], -1.0]
            )
            direction = matrix[:3, :3] @ ray
            hit, location, *_ = scene.ray_cast(depsgraph, origin, Vector(direction / np.linalg.norm(direction)))
            if hit:
                depth[row, col] = float(np.dot(np.array(location) - matrix[:3, 3], -matrix[:3, 2]))
    return depth


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    difference = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    if mask is not None:
        difference = difference[mask]
    return float(10 * np.log10(1.0 / max(np.mean(difference**2), 1e-12)))
