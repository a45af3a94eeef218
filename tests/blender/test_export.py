"""export_tracks against Blender itself: positions equal the evaluated vertices, the camera projects as Blender does."""

import bpy
import numpy as np
import pytest
from blender_scenes import blender_world_vertices, build_test_scene
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from blender_addon.export import export_frames, export_tracks
from das_core.errors import DasError
from das_core.tracking.camera import project
from das_core.tracking.tracks import Tracks


def test_positions_equal_blenders_evaluated_vertices(factory_scene, tmp_path):
    scene = factory_scene
    build_test_scene(scene, frame_start=1, frame_end=24)
    scene.frame_set(7)

    tracks = export_tracks(scene, samples=5)

    assert scene.frame_current == 7, "export must restore the current frame"
    assert tracks.frame_numbers.tolist() == [1, 7, 13, 18, 24]
    assert tracks.extra["objects"] == ["Column", "Stack"]
    assert (tracks.width, tracks.height) == (180, 120)
    names = tracks.extra["objects"]
    for t, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        expected = np.concatenate([blender_world_vertices(bpy.data.objects[name]) for name in names])
        np.testing.assert_allclose(tracks.points[t], expected, atol=1e-4)
    # The animation really moved things: the bend and the wave change positions between frames.
    assert np.abs(tracks.points[-1] - tracks.points[0]).max() > 0.5

    tracks.save(tmp_path / "scene.npz")
    loaded = Tracks.load(tmp_path / "scene.npz")
    np.testing.assert_array_equal(loaded.faces, tracks.faces)


def test_object_vertex_counts_match_each_objects_mesh(factory_scene, tmp_path):
    from blender_scenes import add_instances

    scene = factory_scene
    build_test_scene(scene)
    add_instances(scene)

    tracks = export_tracks(scene, samples=2)

    names, counts = tracks.extra["objects"], tracks.extra["object_vertex_counts"]
    assert len(counts) == len(names) and sum(counts) == tracks.num_points
    scene.frame_set(int(tracks.frame_numbers[0]))
    depsgraph = bpy.context.evaluated_depsgraph_get()
    # Objects by name (the Scatter plane's own mesh is empty), then instances in the depsgraph's order.
    expected = [len(blender_world_vertices(bpy.data.objects[name])) for name in ("Column", "Scatter", "Stack")]
    expected += [
        len(instance.object.data.vertices)
        for instance in depsgraph.object_instances
        if instance.is_instance and instance.object.type == "MESH"
    ]
    assert counts == expected and expected[1] == 0 and len(expected) > 3

    tracks.save(tmp_path / "scene.npz")
    column = Tracks.load(tmp_path / "scene.npz").vertices_of(["Column"])
    np.testing.assert_allclose(tracks.points[0, column], blender_world_vertices(bpy.data.objects["Column"]), atol=1e-4)


def test_faces_are_the_evaluated_triangles(factory_scene):
    scene = factory_scene
    build_test_scene(scene)
    tracks = export_tracks(scene, samples=2)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    scene.frame_set(1)
    expected_triangles = sum(
        len(bpy.data.objects[n].evaluated_get(depsgraph).data.loop_triangles) for n in ("Column", "Stack")
    )
    assert tracks.faces.shape == (expected_triangles, 3)
    assert tracks.faces.max() == tracks.num_points - 1


def test_moving_zooming_camera_projects_like_blender(factory_scene):
    scene = factory_scene
    build_test_scene(scene)
    tracks = export_tracks(scene, samples=3)
    lenses = []
    for t, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        lenses.append(scene.camera.data.lens)
        uv, depth = project(tracks.points[t], tracks.world_to_camera[t], tracks.intrinsics[t])
        ndc = np.array([tuple(world_to_camera_view(scene, scene.camera, Vector(p))) for p in tracks.points[t]])
        expected_uv = np.stack([ndc[:, 0] * tracks.width, (1.0 - ndc[:, 1]) * tracks.height], axis=1)
        np.testing.assert_allclose(uv, expected_uv, atol=0.01)
        np.testing.assert_allclose(depth, ndc[:, 2], rtol=1e-4)
    assert lenses[0] == pytest.approx(35.0) and lenses[-1] == pytest.approx(60.0)
    assert tracks.intrinsics[-1, 0, 0] > 1.6 * tracks.intrinsics[0, 0, 0]


def test_range_step_and_samples(factory_scene):
    scene = factory_scene
    build_test_scene(scene)
    assert export_frames(scene, frame_start=3, frame_end=20, step=5) == [3, 8, 13, 18]
    tracks = export_tracks(scene, frame_start=3, frame_end=20, step=5)
    assert tracks.frame_numbers.tolist() == [3, 8, 13, 18]
    assert export_frames(scene) == list(range(1, 25))  # the default: every frame of the scene's range
    assert export_frames(scene, frame_start=3, frame_end=20, samples=4) == [3, 9, 14, 20]  # evenly spaced
    with pytest.raises(DasError, match="frame step must be 1 or more"):
        export_frames(scene, step=0)


def test_changing_topology_is_left_out_with_a_warning(factory_scene):
    scene = factory_scene
    build_test_scene(scene)
    stack = bpy.data.objects["Stack"]
    subdivision = stack.modifiers["Subdivision"]
    subdivision.levels = 1
    subdivision.keyframe_insert("levels", frame=1)
    subdivision.levels = 2
    subdivision.keyframe_insert("levels", frame=24)

    tracks = export_tracks(scene, samples=4)

    assert tracks.extra["objects"] == ["Column"] and tracks.extra["object_vertex_counts"] == [tracks.num_points]
    assert "Stack" in tracks.extra["warnings"][0] and "vertex count changes" in tracks.extra["warnings"][0]
    column = len(bpy.data.objects["Column"].evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices)
    assert tracks.num_points == column


def test_hide_render_mid_shot_marks_points_invisible(factory_scene):
    scene = factory_scene
    build_test_scene(scene)
    stack = bpy.data.objects["Stack"]
    stack.hide_render = False
    stack.keyframe_insert("hide_render", frame=1)
    stack.hide_render = True
    stack.keyframe_insert("hide_render", frame=20)
    stack.hide_render = False
    scene.frame_set(1)

    tracks = export_tracks(scene, samples=4)

    assert tracks.visibility is not None
    assert tracks.extra["objects"][-1] == "Stack"
    assert tracks.visibility[0].all() and tracks.visibility[:, 0].all()  # the column stays visible
    assert not tracks.visibility[-1, -1]  # the stack is hidden at the last frame


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda scene: setattr(scene, "camera", None), "has no camera"),
        (lambda scene: setattr(scene.camera.data, "type", "ORTHO"), "perspective"),
        (
            lambda scene: [setattr(o, "hide_render", True) for o in scene.objects if o.type == "MESH"],
            "no visible, renderable objects with faces",
        ),
    ],
)
def test_bad_scenes_give_clear_errors(factory_scene, change, message):
    scene = factory_scene
    build_test_scene(scene)
    change(scene)
    with pytest.raises(DasError, match=message):
        export_tracks(scene, samples=3)


def test_empty_range_is_an_error(factory_scene):
    build_test_scene(factory_scene)
    with pytest.raises(DasError, match="empty"):
        export_tracks(factory_scene, frame_start=10, frame_end=5)


def test_instances_are_tracked_like_objects(factory_scene):
    from blender_scenes import add_instances

    scene = factory_scene
    build_test_scene(scene)
    add_instances(scene)

    tracks = export_tracks(scene, samples=3)

    names = tracks.extra["objects"]
    assert sum("Spawner instance" in name for name in names) == 1
    assert sum("Scatter instance" in name for name in names) == 4  # one sphere per plane corner
    assert not tracks.extra["warnings"]
    for t, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        depsgraph = bpy.context.evaluated_depsgraph_get()
        # Objects by name (the Scatter plane's own mesh is empty: its nodes output only instances), then instances.
        expected = [blender_world_vertices(bpy.data.objects[name]) for name in ("Column", "Scatter", "Stack")]
        for instance in depsgraph.object_instances:
            if instance.is_instance and instance.object.type == "MESH":
                matrix = instance.matrix_world
                expected.append(np.array([tuple(matrix @ v.co) for v in instance.object.data.vertices]))
        np.testing.assert_allclose(tracks.points[t], np.concatenate(expected), atol=1e-4)
    assert np.abs(tracks.points[-1] - tracks.points[0])[-20:].max() > 0.3  # the instances moved


def test_vanishing_instances_are_left_out_with_a_warning(factory_scene):
    from blender_scenes import add_instances

    scene = factory_scene
    build_test_scene(scene)
    add_instances(scene)
    # Select the Scatter points whose x is below a keyframed threshold: all at frame 1, none at frame 24.
    tree = bpy.data.node_groups["Scatter spheres"]
    position, compare, value = (
        tree.nodes.new(kind) for kind in ("GeometryNodeInputPosition", "FunctionNodeCompare", "ShaderNodeValue")
    )
    compare.data_type, compare.operation = "FLOAT", "LESS_THAN"
    separate = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(position.outputs[0], separate.inputs[0])
    tree.links.new(separate.outputs["X"], compare.inputs[0])
    tree.links.new(value.outputs[0], compare.inputs[1])
    tree.links.new(compare.outputs[0], tree.nodes["Instance on Points"].inputs["Selection"])
    for frame, threshold in ((1, 10.0), (24, -10.0)):
        value.outputs[0].default_value = threshold
        value.outputs[0].keyframe_insert("default_value", frame=frame)

    tracks = export_tracks(scene, samples=3)

    assert not any("Scatter instance" in name for name in tracks.extra["objects"])
    assert any("Spawner instance" in name for name in tracks.extra["objects"])
    assert "Scatter instance" in tracks.extra["warnings"][0] and "disappears" in tracks.extra["warnings"][0]
