"""The image operators in real Blender, against a real preview server with a tiny depth model."""

import time

import bpy
import numpy as np
import pytest
from PIL import Image

from blender_addon import depth_request, jobs
from das_core.tracking.camera_motion import camera_path
from das_core.tracking.proxy import blender_camera_matrices
from das_core.workflow.local_server import LocalServer

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def depth_server(tmp_path_factory):
    from tests.server.tiny_depth import save_tiny_depth_model

    model = save_tiny_depth_model(tmp_path_factory.mktemp("tiny-depth"))
    with LocalServer("preview", tmp_path_factory.mktemp("server"), extra_args=("--depth-model", str(model))) as server:
        yield server.address


def picture(tmp_path, height: int = 24, width: int = 36):
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "picture.png")
    return tmp_path / "picture.png"


def wait_for_depth(timeout: float = 60.0) -> None:
    """Run the add-on's timer (no event loop runs it in background mode) until no depth request waits."""
    deadline = time.monotonic() + timeout
    while depth_request.PENDING:
        assert time.monotonic() < deadline, "the depth request did not end"
        time.sleep(0.05)
        depth_request.tick()


def test_new_scene_from_image_asks_the_server_and_sets_the_scene_up(factory_scene, addon, depth_server, tmp_path):
    factory_scene.das.server = depth_server
    path = picture(tmp_path)
    assert bpy.ops.das.image_scene(filepath=str(path), step=2, split=False) == {"FINISHED"}
    # The operator returned with the request under way: the scene is built later, by the timer.
    assert "picture" not in bpy.data.scenes and [p.label for p in depth_request.PENDING] == ["picture.png"]
    assert bpy.app.timers.is_registered(depth_request._timer)
    wait_for_depth()
    assert bpy.context.window.scene.name == "picture"  # shown where the source scene was
    scene = bpy.data.scenes["picture"]
    assert scene.das.server == depth_server
    assert (scene.render.resolution_x, scene.render.resolution_y) == (36, 24)
    assert (scene.frame_start, scene.frame_end) == (0, 48)
    assert scene.das.reference == "IMAGE" and scene.das.reference_image == str(path)
    (proxy,) = [obj for obj in scene.objects if obj.type == "MESH"]
    assert len(proxy.data.polygons) == 2 * 18 * 12
    assert proxy.active_material.node_tree.nodes.active.image.filepath == str(path)
    assert scene.camera.data.lens == pytest.approx(18 / np.tan(np.radians(30)) * 36 / 36)


def test_depth_file_split_and_camera_presets(factory_scene, addon, tmp_path):
    path = picture(tmp_path, 24, 32)
    depth = np.full((24, 32), 4.0)
    depth[6:18, 8:20] = 2.0
    np.save(tmp_path / "depth.npy", depth)
    assert bpy.ops.das.image_scene(filepath=str(path), depth_file=str(tmp_path / "depth.npy"), step=1, split=False) == {
        "FINISHED"
    }
    scene = bpy.data.scenes["picture"]
    with bpy.context.temp_override(scene=scene, active_object=scene.objects["picture"]):
        assert bpy.ops.das.split_by_depth() == {"FINISHED"}
        names = sorted(obj.name for obj in scene.objects if obj.type == "MESH")
        assert names == ["picture part 0", "picture part 1"]
        assert bpy.ops.das.camera_move(move="DOLLY_IN", amount=0.5) == {"FINISHED"}
        scene.frame_set(48)
        np.testing.assert_allclose(scene.camera.matrix_world.translation, [0, 0.5, 0], atol=1e-5)
        assert bpy.ops.das.camera_move(motion="rot y 10") == {"FINISHED"}
        scene.frame_set(48)
        expected = blender_camera_matrices(camera_path("rot y 10"))[48]
        np.testing.assert_allclose(np.array(scene.camera.matrix_world), expected, atol=1e-5)
        with pytest.raises(RuntimeError, match="unknown camera motion 'zoom'"):
            bpy.ops.das.camera_move(motion="zoom 2")


def test_a_server_without_depth_is_reported_in_the_panel(factory_scene, addon, tmp_path):
    factory_scene.das.server = "tcp://127.0.0.1:9"  # nothing listens
    bpy.context.preferences.addons["blender_addon"].preferences.timeout = 1.0
    started = time.monotonic()
    assert bpy.ops.das.image_scene(filepath=str(picture(tmp_path))) == {"FINISHED"}
    wait_for_depth()
    assert time.monotonic() - started < 10  # the connection timeout, not the depth request's 120 s
    assert "no das server answered" in jobs.ERRORS[factory_scene.session_uid]
    assert [scene.name for scene in bpy.data.scenes] == [factory_scene.name]
