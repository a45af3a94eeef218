"""From one picture to a scene: Blender's render + depth -> proxy -> the same picture, and a moved camera."""

import bpy
import numpy as np
from image_scenes import build_box_and_wall, exact_cycles, intrinsics, psnr, ray_depth, render

from blender_addon.image_scene import build_image_scene, keyframe_camera
from das_core.tracking.camera_motion import camera_path
from das_core.tracking.proxy import build_proxy

MOVE = "trans 0.15 -0.05 -0.3; rot y 2"


def test_the_proxy_reproduces_the_picture_moves_like_the_scene_and_splits_the_box(factory_scene, addon, tmp_path):
    source = factory_scene
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    box = build_box_and_wall(source)
    picture = render(source, tmp_path / "picture.png")
    depth = ray_depth(source)
    assert np.isfinite(depth).all()
    proxy = build_proxy(depth, intrinsics(source), step=1)

    scene = bpy.data.scenes.new("proxy")
    objects = build_image_scene(scene, str(tmp_path / "picture.png"), proxy, split=True)
    exact_cycles(scene)
    # The proxy's world to the source scene's: both cameras as they are at frame 0.
    relative = np.array(source.camera.matrix_world) @ np.linalg.inv(np.array(scene.camera.matrix_world))
    at_start = psnr(render(scene, tmp_path / "proxy.png"), picture)
    assert at_start >= 35.0, at_start  # (a) the picture again, through the proxy's camera

    path = camera_path(MOVE, 9)
    keyframe_camera(source, source.camera, path)
    keyframe_camera(scene, scene.camera, path)
    truth = render(source, tmp_path / "moved-truth.png", frame=8)
    moved = render(scene, tmp_path / "moved-proxy.png", frame=8)
    scene.frame_set(8)
    seen = np.isfinite(ray_depth(scene))  # pixels the proxy covers after the move
    assert 0.8 < seen.mean() < 1.0  # the move uncovers some of the wall behind the box
    after_move = psnr(moved, truth, seen)
    print(f"PSNR at frame 0: {at_start:.1f} dB; after '{MOVE}' on pixels both see: {after_move:.1f} dB")
    assert after_move >= 25.0, after_move  # (b)

    assert len(objects) == 2  # (c) the wall and the box
    box_part = np.array([v.co for v in objects[1].data.vertices]) @ relative[:3, :3].T + relative[:3, 3]
    local = (box_part - np.array(box.matrix_world)[:3, 3]) @ np.array(box.matrix_world)[:3, :3]
    assert np.abs(local).max() < 0.7 + 0.05  # every vertex of the second object is on the box (within a pixel)
    wall = np.array([v.co for v in objects[0].data.vertices]) @ relative[:3, :3].T + relative[:3, 3]
    np.testing.assert_allclose(wall[:, 1], 4.0, atol=1e-2)  # and every vertex of the first on the wall
