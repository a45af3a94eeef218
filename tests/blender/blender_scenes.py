"""Small animated scenes built in code for the add-on tests (no .blend files to keep in sync)."""

from __future__ import annotations

from contextlib import contextmanager

import bpy
import numpy as np


def add_color_strip(scene: bpy.types.Scene, name: str, *, channel: int, frame_start: int, length: int):
    """A colour strip covering [frame_start, frame_start + length): `new_effect` takes `length` in 5.x, `frame_end` in 4.2."""
    from blender_addon.sequencer import strip_collection, strip_span

    strips = strip_collection(scene)
    if bpy.app.version >= (5, 0):
        strip = strips.new_effect(name, "COLOR", channel=channel, frame_start=frame_start, length=length)
    else:
        strip = strips.new_effect(
            name, "COLOR", channel=channel, frame_start=frame_start, frame_end=frame_start + length
        )
    assert strip_span(strip) == (frame_start, frame_start + length)
    return strip


def clear(scene: bpy.types.Scene) -> None:
    """Remove every object, keep the scene settings."""
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)


def add_moving_camera(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> bpy.types.Object:
    """A camera that dollies, pans and zooms (focal length 35 -> 60 mm), with a little lens shift."""
    data = bpy.data.cameras.new("Cam")
    camera = bpy.data.objects.new("Cam", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    data.sensor_fit = "AUTO"
    data.shift_x, data.shift_y = 0.05, -0.03
    for frame, location, rotation, lens in (
        (frame_start, (0.0, -9.0, 2.0), (1.45, 0.0, 0.0), 35.0),
        (frame_end, (3.0, -8.0, 3.0), (1.35, 0.0, 0.35), 60.0),
    ):
        camera.location, camera.rotation_euler, data.lens = location, rotation, lens
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
        data.keyframe_insert("lens", frame=frame)
    return camera


def add_armature_mesh(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> bpy.types.Object:
    """A subdivided column skinned to a two-bone armature whose upper bone bends over the shot."""
    bpy.ops.mesh.primitive_cylinder_add(vertices=12, depth=4.0, radius=0.5, location=(0.0, 0.0, 2.0))
    column = bpy.context.active_object
    column.name = "Column"
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=8)
    bpy.ops.object.mode_set(mode="OBJECT")

    armature_data = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", armature_data)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    lower = armature_data.edit_bones.new("Lower")
    lower.head, lower.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 2.0)
    upper = armature_data.edit_bones.new("Upper")
    upper.head, upper.tail, upper.parent = (0.0, 0.0, 2.0), (0.0, 0.0, 4.0), lower
    bpy.ops.object.mode_set(mode="OBJECT")

    column.parent = rig
    modifier = column.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    heights = np.array([v.co.z for v in column.data.vertices]) + column.location.z
    lower_group, upper_group = column.vertex_groups.new(name="Lower"), column.vertex_groups.new(name="Upper")
    for vertex, height in zip(column.data.vertices, heights):
        weight = float(np.clip((height - 1.5) / 1.0, 0.0, 1.0))
        lower_group.add([vertex.index], 1.0 - weight, "REPLACE")
        upper_group.add([vertex.index], weight, "REPLACE")

    bone = rig.pose.bones["Upper"]
    bone.rotation_mode = "XYZ"
    for frame, angle in ((frame_start, 0.0), (frame_end, 1.2)):
        bone.rotation_euler = (angle, 0.0, 0.0)
        bone.keyframe_insert("rotation_euler", frame=frame)
    rig.location = (0.0, 0.0, 0.0)
    rig.keyframe_insert("location", frame=frame_start)
    rig.location = (1.0, 0.5, 0.0)
    rig.keyframe_insert("location", frame=frame_end)
    return column


def add_modifier_stack(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> bpy.types.Object:
    """A cube with a shape key, a bevel, subdivision and an animated wave, parented to a spinning empty."""
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(-2.5, 1.0, 1.0))
    cube = bpy.context.active_object
    cube.name = "Stack"
    cube.shape_key_add(name="Basis")
    stretch = cube.shape_key_add(name="Stretch")
    for point in stretch.data:
        point.co.z *= 2.0
    for frame, value in ((frame_start, 0.0), (frame_end, 1.0)):
        stretch.value = value
        stretch.keyframe_insert("value", frame=frame)
    bevel = cube.modifiers.new("Bevel", "BEVEL")
    bevel.width, bevel.limit_method = 0.05, "NONE"
    cube.modifiers.new("Subdivision", "SUBSURF").levels = 2
    wave = cube.modifiers.new("Wave", "WAVE")
    wave.height, wave.width, wave.speed = 0.2, 0.8, 0.1

    pivot = bpy.data.objects.new("Pivot", None)
    scene.collection.objects.link(pivot)
    pivot.location = (-1.0, 0.0, 0.0)
    cube.parent = pivot
    for frame, angle in ((frame_start, 0.0), (frame_end, 0.8)):
        pivot.rotation_euler = (0.0, 0.0, angle)
        pivot.keyframe_insert("rotation_euler", frame=frame)
    return cube


def build_test_scene(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> None:
    """The armature column, the modifier-stack cube and the moving camera, at a small render size."""
    clear(scene)
    scene.frame_start, scene.frame_end = frame_start, frame_end
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 360, 240, 50
    add_armature_mesh(scene, frame_start=frame_start, frame_end=frame_end)
    add_modifier_stack(scene, frame_start=frame_start, frame_end=frame_end)
    add_moving_camera(scene, frame_start=frame_start, frame_end=frame_end)
    scene.frame_set(frame_start)


def add_instances(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> None:
    """A moving Empty instancing a hidden collection, and a plane whose geometry nodes put spheres on its points."""
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    bpy.ops.mesh.primitive_monkey_add(size=0.6)
    monkey = bpy.context.active_object
    for collection in list(monkey.users_collection):
        collection.objects.unlink(monkey)
    props.objects.link(monkey)
    bpy.context.view_layer.layer_collection.children["Props"].exclude = True  # only its instance is drawn
    spawner = bpy.data.objects.new("Spawner", None)
    spawner.instance_type, spawner.instance_collection = "COLLECTION", props
    scene.collection.objects.link(spawner)
    for frame, location in ((frame_start, (2.0, 2.0, 1.0)), (frame_end, (2.5, 1.0, 2.0))):
        spawner.location = location
        spawner.keyframe_insert("location", frame=frame)

    bpy.ops.mesh.primitive_plane_add(size=1.5, location=(-1.0, 3.0, 0.5))
    plane = bpy.context.active_object
    plane.name = "Scatter"
    tree = bpy.data.node_groups.new("Scatter spheres", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    on_points, sphere = tree.nodes.new("GeometryNodeInstanceOnPoints"), tree.nodes.new("GeometryNodeMeshIcoSphere")
    sphere.inputs["Radius"].default_value = 0.2
    tree.links.new(group_in.outputs[0], on_points.inputs["Points"])
    tree.links.new(sphere.outputs["Mesh"], on_points.inputs["Instance"])
    tree.links.new(on_points.outputs[0], group_out.inputs[0])
    plane.modifiers.new("Scatter", "NODES").node_group = tree
    for frame, angle in ((frame_start, 0.0), (frame_end, 1.0)):
        plane.rotation_euler = (0.0, 0.0, angle)
        plane.keyframe_insert("rotation_euler", frame=frame)


@contextmanager
def blender_evaluated_mesh(obj: bpy.types.Object):
    """(mesh, matrix_world) of `obj` as Blender evaluates it now, the obvious way: to_mesh().

    to_mesh() refuses hair curves and point clouds, so their mesh (made by geometry nodes) comes from
    `evaluated_geometry()` (Blender 4.5 and newer) or, before that, from the depsgraph's instance of it.
    """
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    if obj.type not in ("CURVES", "POINTCLOUD"):
        try:
            yield evaluated.to_mesh(), evaluated.matrix_world
        finally:
            evaluated.to_mesh_clear()
    elif hasattr(evaluated, "evaluated_geometry"):
        geometry = evaluated.evaluated_geometry()  # owns the mesh: keep it alive while reading
        yield geometry.mesh, evaluated.matrix_world
    else:
        for instance in depsgraph.object_instances:
            if instance.is_instance and instance.parent.original == obj and instance.object.type == "MESH":
                yield instance.object.data, instance.matrix_world
                return


def blender_world_vertices(obj: bpy.types.Object) -> np.ndarray:
    """World positions the slow, obvious way: Blender's evaluated mesh and matrix_world @ co per vertex."""
    with blender_evaluated_mesh(obj) as (mesh, matrix):
        return np.array([tuple(matrix @ v.co) for v in mesh.vertices]).reshape(-1, 3)


def _keyframes(owner, path: str, values, frame_start: int, frame_end: int) -> None:
    """Key `owner.path` to values[0] at frame_start and values[1] at frame_end."""
    for frame, value in zip((frame_start, frame_end), values):
        setattr(owner, path, value)
        owner.keyframe_insert(path, frame=frame)


def add_nonmesh_objects(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> None:
    """Curves, text, a NURBS surface, a metaball and hair, animated as an artist would.

    Exported (they have faces): Rope (a curve whose bevel depth grows), Logo (extruded text parented
    to a moving empty and bent along Path by a Curve modifier), Sheet (a turning NURBS surface), Blob
    (a metaball sliding along, one ball: constant topology) and Tube (hair curves that geometry nodes
    sweep into a mesh). Contributing nothing: Path (a bare curve) and Hair (plain hair curves).
    """
    bpy.ops.curve.primitive_bezier_curve_add(location=(0.0, 2.0, 1.0))
    rope = bpy.context.active_object
    rope.name = "Rope"
    _keyframes(rope.data, "bevel_depth", (0.05, 0.25), frame_start, frame_end)

    bpy.ops.curve.primitive_bezier_circle_add(radius=3.0, location=(0.0, 0.0, 0.5))
    bpy.context.active_object.name = "Path"
    mover = bpy.data.objects.new("Mover", None)
    scene.collection.objects.link(mover)
    _keyframes(mover, "location", ((0.0, -3.0, 0.5), (1.5, -2.5, 0.8)), frame_start, frame_end)
    _keyframes(mover, "rotation_euler", ((0.0, 0.0, 0.0), (0.0, 0.0, 0.6)), frame_start, frame_end)
    bpy.ops.object.text_add()
    logo = bpy.context.active_object
    logo.name, logo.data.body, logo.data.extrude = "Logo", "DaS", 0.1
    logo.parent = mover
    logo.modifiers.new("Follow path", "CURVE").object = bpy.data.objects["Path"]

    bpy.ops.surface.primitive_nurbs_surface_surface_add(radius=0.8, location=(2.5, 1.0, 1.0))
    sheet = bpy.context.active_object
    sheet.name = "Sheet"
    _keyframes(sheet, "rotation_euler", ((0.0, 0.0, 0.0), (0.9, 0.0, 0.4)), frame_start, frame_end)

    bpy.ops.object.metaball_add(type="BALL", radius=0.7, location=(-2.5, 0.0, 1.0))
    blob = bpy.context.active_object
    blob.name = "Blob"
    _keyframes(blob, "location", ((-2.5, 0.0, 1.0), (-2.0, 1.0, 1.5)), frame_start, frame_end)

    for name, location in (("Hair", (-1.0, -1.0, 0.0)), ("Tube", (1.0, -1.0, 0.0))):
        curves = bpy.data.hair_curves.new(name)
        curves.add_curves([3, 3])
        curves.position_data.foreach_set("vector", [0, 0, 0, 0, 0, 0.5, 0.1, 0, 1, 0.4, 0, 0, 0.4, 0, 0.5, 0.5, 0.1, 1])
        obj = bpy.data.objects.new(name, curves)
        obj.location = location
        scene.collection.objects.link(obj)
    tree = bpy.data.node_groups.new("Sweep", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    sweep, profile = tree.nodes.new("GeometryNodeCurveToMesh"), tree.nodes.new("GeometryNodeCurvePrimitiveCircle")
    profile.inputs["Radius"].default_value = 0.05
    tree.links.new(group_in.outputs[0], sweep.inputs["Curve"])
    tree.links.new(profile.outputs["Curve"], sweep.inputs["Profile Curve"])
    tree.links.new(sweep.outputs["Mesh"], group_out.inputs[0])
    tube = bpy.data.objects["Tube"]
    tube.modifiers.new("Sweep", "NODES").node_group = tree
    _keyframes(tube, "location", ((1.0, -1.0, 0.0), (1.0, -1.5, 0.5)), frame_start, frame_end)


def add_merging_metaballs(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> None:
    """A metaball family, Drop and Drop.001, whose second ball moves into the first: the surface changes topology."""
    for name, location in (("Drop", (0.0, 0.0, 3.0)), ("Drop.001", (-2.0, 0.0, 3.0))):
        bpy.ops.object.metaball_add(type="BALL", radius=0.6, location=location)
        bpy.context.active_object.name = name
    _keyframes(bpy.data.objects["Drop.001"], "location", ((-2.0, 0.0, 3.0), (-0.6, 0.0, 3.0)), frame_start, frame_end)


def add_rebuilt_metaball(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 2) -> bpy.types.Object:
    """A coarse two-ball metaball whose second ball moves: its surface keeps the vertex count, not the triangles."""
    data = bpy.data.metaballs.new("Bubble")
    data.resolution = data.render_resolution = 0.4
    bubble = bpy.data.objects.new("Bubble", data)
    bubble.location = (0.0, 0.0, 3.0)
    scene.collection.objects.link(bubble)
    still, moving = data.elements.new(), data.elements.new()
    still.radius = moving.radius = 1.0
    _keyframes(moving, "co", ((1.22, 0.0, 0.0), (1.55, 0.0, 0.0)), frame_start, frame_end)
    return bubble


def add_instanced_title(scene: bpy.types.Scene, *, frame_start: int = 1, frame_end: int = 24) -> bpy.types.Object:
    """Extruded text in an excluded collection, drawn only through a moving collection-instance Empty, Titler."""
    titles = bpy.data.collections.new("Titles")
    scene.collection.children.link(titles)
    text = bpy.data.curves.new("Title", "FONT")
    text.body, text.extrude = "Hi", 0.05
    title = bpy.data.objects.new("Title", text)
    title.location = (0.0, 0.0, 0.5)
    titles.objects.link(title)
    bpy.context.view_layer.layer_collection.children["Titles"].exclude = True
    titler = bpy.data.objects.new("Titler", None)
    titler.instance_type, titler.instance_collection = "COLLECTION", titles
    scene.collection.objects.link(titler)
    _keyframes(titler, "location", ((-1.0, 1.0, 0.0), (0.0, 0.5, 1.0)), frame_start, frame_end)
    return titler
