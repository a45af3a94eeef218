"""export_tracks on curves, text, NURBS surfaces, metaballs and hair, against Blender's own evaluated geometry."""

import bpy
import numpy as np
import pytest
from blender_scenes import (
    add_instanced_title,
    add_merging_metaballs,
    add_moving_camera,
    add_nonmesh_objects,
    add_rebuilt_metaball,
    blender_evaluated_mesh,
    blender_world_vertices,
    clear,
)

from blender_addon.export import export_tracks
from das_core.errors import DasError

EXPORTED = ["Blob", "Logo", "Rope", "Sheet", "Tube"]


def _nonmesh_scene(scene: bpy.types.Scene, *, frame_end: int = 24) -> None:
    clear(scene)
    scene.frame_start, scene.frame_end = 1, frame_end
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 360, 240, 50
    add_moving_camera(scene, frame_end=frame_end)


def test_curves_text_surfaces_metaballs_and_swept_hair_follow_blenders_evaluated_vertices(factory_scene):
    scene = factory_scene
    _nonmesh_scene(scene)
    add_nonmesh_objects(scene)

    tracks = export_tracks(scene, samples=4)

    assert tracks.extra["objects"] == EXPORTED  # objects by name, whatever their type
    # The bare curve and the plain hair bring no faces: named, not silently dropped.
    assert tracks.extra["warnings"] == [tracks.extra["warnings"][0]]
    assert tracks.extra["warnings"][0].startswith("left out Hair (hair curves), Path (curve): no faces")
    scene.frame_set(1)
    triangles = 0
    for name in EXPORTED:
        with blender_evaluated_mesh(bpy.data.objects[name]) as (mesh, _):
            triangles += len(mesh.loop_triangles)
    assert tracks.faces.shape == (triangles, 3)
    expected = []  # per frame: {name: Blender's world vertices}
    for t, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        expected.append({name: blender_world_vertices(bpy.data.objects[name]) for name in EXPORTED})
        np.testing.assert_allclose(tracks.points[t], np.concatenate(list(expected[t].values())), atol=1e-4)

    first, last = expected[0], expected[-1]
    # The animated bevel depth (0.05 -> 0.25) thickens the rope: its cross-section grows, not just moves.
    assert np.ptp(last["Rope"], axis=0)[2] > np.ptp(first["Rope"], axis=0)[2] + 0.3
    # The text rides its parent empty and bends along the path: the letters change shape, not only place.
    spread = [np.linalg.norm(points - points.mean(axis=0), axis=1) for points in (first["Logo"], last["Logo"])]
    assert np.abs(spread[1] - spread[0]).max() > 0.05
    for name in EXPORTED:
        assert np.abs(last[name] - first[name]).max() > 0.2, f"{name} should move over the shot"


def test_metaballs_whose_surface_changes_topology_are_left_out_with_a_warning(factory_scene):
    scene = factory_scene
    _nonmesh_scene(scene)
    add_nonmesh_objects(scene)
    add_merging_metaballs(scene)
    counts = []
    for frame in (1, 24):
        scene.frame_set(frame)
        counts.append(len(blender_world_vertices(bpy.data.objects["Drop"])))
    assert counts[0] != counts[1], "the merging balls must change the surface's vertex count"

    tracks = export_tracks(scene, samples=4)

    assert tracks.extra["objects"] == EXPORTED  # the rest is still exported; Drop.001 is drawn in Drop's surface
    changed = tracks.extra["warnings"][-1]
    assert changed.startswith("left out Drop:") and "vertex count changes" in changed
    assert not any("Drop.001" in warning for warning in tracks.extra["warnings"])


def test_metaball_rebuilt_with_the_same_vertex_count_is_left_out(factory_scene):
    """Same vertex count, other triangles: vertex i is another surface point, so it must not be tracked."""
    scene = factory_scene
    _nonmesh_scene(scene, frame_end=2)
    bubble = add_rebuilt_metaball(scene)
    bpy.ops.mesh.primitive_cube_add(size=0.5)
    meshes = []
    for frame in (1, 2):
        scene.frame_set(frame)
        with blender_evaluated_mesh(bubble) as (mesh, _):
            meshes.append((len(mesh.vertices), [tuple(t.vertices) for t in mesh.loop_triangles]))
    assert meshes[0][0] == meshes[1][0] and meshes[0][1] != meshes[1][1], "precondition: same count, other triangles"

    tracks = export_tracks(scene, samples=2)

    assert tracks.extra["objects"] == ["Cube"]
    assert tracks.extra["warnings"][0].startswith("left out Bubble:")


def test_collection_instanced_text_is_tracked(factory_scene):
    scene = factory_scene
    _nonmesh_scene(scene)
    titler = add_instanced_title(scene)

    tracks = export_tracks(scene, samples=3)

    assert [name.split(" ")[:2] for name in tracks.extra["objects"]] == [["Titler", "instance"]]
    assert tracks.extra["objects"][0].endswith("(Title)") and not tracks.extra["warnings"]
    for t, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        # The text as Blender evaluates it on its own, carried by the instancing Empty's transform.
        matrix = np.array(titler.evaluated_get(bpy.context.evaluated_depsgraph_get()).matrix_world)
        expected = blender_world_vertices(bpy.data.objects["Title"]) @ matrix[:3, :3].T + matrix[:3, 3]
        np.testing.assert_allclose(tracks.points[t], expected, atol=1e-4)
    assert np.abs(tracks.points[-1] - tracks.points[0]).max() > 0.5  # the Empty carried it


def test_a_scene_of_bare_curves_says_what_has_no_faces(factory_scene):
    scene = factory_scene
    _nonmesh_scene(scene)
    bpy.ops.curve.primitive_bezier_circle_add()
    bpy.context.active_object.name = "Outline"

    with pytest.raises(DasError, match=r"no visible, renderable objects with faces.*Outline \(curve\).*Bevel Depth"):
        export_tracks(scene, samples=3)
