"""A scene from one picture: the proxy (`das_core.tracking.proxy`) as textured objects, and its camera.

The camera sits at the origin looking along +Y and sees exactly the image at the first frame; the
proxy's objects show the picture (an emission shader, so renders reproduce it; the viewport's
texture colour too). The picture becomes the scene's reference image, so Generate sends it rather
than a render of the proxy. Each face keeps its depth part in the `das_part` attribute, which
`split_by_parts` uses to make one object per part. Camera moves are keyframed from DaS camera
paths (`das_core.tracking.camera_motion`), one key per frame.
"""

from __future__ import annotations

import math
import os

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.tracking.proxy import OPENCV_TO_BLENDER, Proxy, blender_camera_matrices
from das_core.tracking.window import DAS_WINDOW

PART_ATTRIBUTE = "das_part"
MIN_PART_FRACTION = 0.01  # parts with fewer faces than this share the largest part's object
SENSOR_WIDTH_MM = 36.0


def build_image_scene(scene: bpy.types.Scene, image_path: str, proxy: Proxy, *, split: bool) -> list[bpy.types.Object]:
    """Fill `scene` with `proxy` (one object, or one per large part with `split`), its camera and settings."""
    name = os.path.splitext(os.path.basename(image_path))[0] or "image"
    image = bpy.data.images.load(os.path.abspath(image_path), check_existing=True)
    material = _picture_material(name, image)
    whole = _mesh_object(scene, name, proxy.vertices, proxy.faces, proxy.uvs, proxy.face_parts, material)
    objects = split_by_parts(whole) if split else [whole]
    _add_camera(scene, name, proxy)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = proxy.width, proxy.height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = int(DAS_WINDOW.fps), 1.0
    scene.frame_start, scene.frame_end = 0, DAS_WINDOW.frames - 1
    scene.frame_set(0)
    scene.view_settings.view_transform = "Standard"  # renders give back the picture's own values
    scene.das.reference = "IMAGE"
    scene.das.reference_image = os.path.abspath(image_path)
    _show_textures()
    return objects


def split_by_parts(source: bpy.types.Object) -> list[bpy.types.Object]:
    """Replace a proxy object by one object per depth part (small parts stay with the largest)."""
    mesh = source.data
    attribute = mesh.attributes.get(PART_ATTRIBUTE)
    if attribute is None or attribute.domain != "FACE":
        raise DasError(f"{source.name!r} is not an image proxy (it has no {PART_ATTRIBUTE} face attribute)")
    vertices = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", vertices)
    faces = np.empty(len(mesh.polygons) * 3, np.int32)
    mesh.polygons.foreach_get("vertices", faces)
    uvs = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers.active.data.foreach_get("uv", uvs)
    parts = np.empty(len(mesh.polygons), np.int32)
    attribute.data.foreach_get("value", parts)
    faces, uvs = faces.reshape(-1, 3), uvs.reshape(-1, 3, 2)
    sizes = np.bincount(parts)
    large = np.flatnonzero(sizes >= max(1, MIN_PART_FRACTION * len(parts)))
    parts = np.where(np.isin(parts, large), parts, int(np.argmax(sizes)))
    base, scene, material = source.name, source.users_scene[0], source.active_material
    matrix = np.array(source.matrix_world, dtype=np.float64)
    vertices = (vertices.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]).reshape(-1)  # parts keep where they were
    objects = []
    for index, part in enumerate(sorted(np.unique(parts), key=lambda p: -sizes[p])):
        chosen = parts == part
        used, inverse = np.unique(faces[chosen], return_inverse=True)
        positions = vertices.reshape(-1, 3)[used]
        objects.append(
            _mesh_object(
                scene, f"{base} part {index}", positions, inverse.reshape(-1, 3), uvs[chosen], parts[chosen], material,
                world=True,
            )
        )  # fmt: skip
    bpy.data.objects.remove(source)
    bpy.data.meshes.remove(mesh)
    return objects


def keyframe_camera(scene: bpy.types.Scene, camera: bpy.types.Object, world_to_camera: np.ndarray) -> None:
    """Key `camera` on each frame from the scene's start along a frame-0-relative DaS path, from its pose at the start."""
    scene.frame_set(scene.frame_start)
    start = np.array(camera.matrix_world, dtype=np.float64)
    first = blender_camera_matrices(np.eye(4)[None])[0]
    relative = start @ np.linalg.inv(first)  # where the camera is now, relative to the proxy's first camera
    camera.animation_data_clear()
    camera.rotation_mode = "XYZ"
    for offset, matrix in enumerate(blender_camera_matrices(world_to_camera)):
        camera.matrix_world = _matrix(relative @ matrix)
        camera.keyframe_insert("location", frame=scene.frame_start + offset)
        camera.keyframe_insert("rotation_euler", frame=scene.frame_start + offset)
    scene.frame_end = scene.frame_start + len(world_to_camera) - 1
    scene.frame_set(scene.frame_start)


def _mesh_object(
    scene: bpy.types.Scene,
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    parts: np.ndarray,
    material: bpy.types.Material,
    *,
    world: bool = False,
) -> bpy.types.Object:
    """A triangle mesh object from arrays: vertices in frame-0 camera space (or Blender's world), per-vertex or per-corner UVs."""
    if not world:
        vertices = vertices @ OPENCV_TO_BLENDER[:3, :3].T
        uvs = uvs[faces]
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, np.float32).reshape(-1))
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, np.int32).reshape(-1))
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.uv_layers.new(name="picture").data.foreach_set("uv", np.ascontiguousarray(uvs, np.float32).reshape(-1))
    mesh.attributes.new(PART_ATTRIBUTE, "INT", "FACE").data.foreach_set("value", np.asarray(parts, np.int32))
    mesh.update()
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _picture_material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    material = bpy.data.materials.new(f"{name} picture")
    if hasattr(material, "use_nodes"):
        material.use_nodes = True  # always on (and deprecated) in Blender 5.0
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.extension = "EXTEND"
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    nodes.active = texture  # what Workbench's texture colour shows
    return material


def _add_camera(scene: bpy.types.Scene, name: str, proxy: Proxy) -> bpy.types.Object:
    """The camera whose image at frame 0 is exactly the picture (horizontal sensor fit, principal point by shift)."""
    (fx, _, cx), (_, fy, cy) = proxy.intrinsics[:2]
    if not math.isclose(fx, fy, rel_tol=1e-6):
        raise DasError("the proxy's camera has non-square pixels; build it with equal focal lengths")
    data = bpy.data.cameras.new(f"{name} camera")
    data.sensor_fit, data.sensor_width = "HORIZONTAL", SENSOR_WIDTH_MM
    data.lens = fx * SENSOR_WIDTH_MM / proxy.width
    data.shift_x = (proxy.width / 2.0 - cx) / proxy.width
    data.shift_y = (cy - proxy.height / 2.0) / proxy.width
    data.clip_start, data.clip_end = 0.01, 1000.0
    camera = bpy.data.objects.new(f"{name} camera", data)
    scene.collection.objects.link(camera)
    camera.matrix_world = _matrix(blender_camera_matrices(np.eye(4)[None])[0])
    scene.camera = camera
    return camera


def _matrix(array: np.ndarray):
    from mathutils import Matrix

    return Matrix(array.tolist())


def _show_textures() -> None:
    """Viewports in solid mode show the picture (texture colour); nothing to do without a UI."""
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.spaces.active.shading.color_type = "TEXTURE"
