"""The image proxy: depth + camera -> a mesh that covers the picture exactly and comes apart at depth edges."""

import numpy as np
import pytest

from das_core.tracking.camera import project
from das_core.tracking.proxy import (
    RELATIVE_MEDIAN_DEPTH,
    ProxyError,
    build_proxy,
    intrinsics_from_fov,
)
from das_core.tracking.render import render_tracking

H, W = 48, 64


def box_on_plane(near: float = 3.0, far: float = 5.0) -> np.ndarray:
    depth = np.full((H, W), far)
    depth[12:36, 16:40] = near
    return depth


def test_vertices_project_back_onto_their_pixel_corners():
    camera = intrinsics_from_fov(W, H, 50.0)
    proxy = build_proxy(box_on_plane(), camera, step=4)
    uv, z = project(proxy.vertices, np.eye(4), camera)
    assert (z > 0).all()
    np.testing.assert_allclose(uv[:, 0], proxy.uvs[:, 0] * W, atol=1e-3)
    np.testing.assert_allclose(uv[:, 1], (1 - proxy.uvs[:, 1]) * H, atol=1e-3)
    corners = uv[proxy.faces]  # the faces tile the frame: their screen areas add up to the image
    area = 0.5 * np.abs(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]))
    assert area.sum() == pytest.approx(W * H, rel=1e-4)


def test_faces_face_the_camera():
    proxy = build_proxy(box_on_plane(), step=2)
    a, b, c = (proxy.vertices[proxy.faces[:, i]].astype(np.float64) for i in range(3))
    normals = np.cross(b - a, c - a)
    assert (np.einsum("ij,ij->i", normals, a) < 0).all()  # pointing back towards the camera at the origin


def test_a_box_in_front_of_a_plane_is_its_own_part():
    proxy = build_proxy(box_on_plane(), step=1)
    assert proxy.num_parts == 2
    assert list(proxy.part_sizes()) == [2 * (W * H - 24 * 24), 2 * 24 * 24]
    box_vertices, box_faces, _ = proxy.submesh([1])
    np.testing.assert_allclose(box_vertices[:, 2], 3.0, rtol=1e-5)
    background, _, _ = proxy.submesh([0])
    np.testing.assert_allclose(background[:, 2], 5.0, rtol=1e-5)  # no vertex pulled towards the box
    assert len(box_faces) == 2 * 24 * 24


def test_a_tilted_plane_stays_one_flat_part():
    camera = intrinsics_from_fov(W, H, 60.0)
    y, x = np.mgrid[0:H, 0:W] + 0.5
    rays = np.stack([(x - W / 2) / camera[0, 0], (y - H / 2) / camera[1, 1], np.ones_like(x)], -1)
    normal, offset = np.array([0.0, -0.6, -0.8]), -4.0  # the plane n.p = offset, seen obliquely
    depth = offset / (rays @ normal)
    proxy = build_proxy(depth, camera, step=4)
    assert proxy.num_parts == 1
    inner = (proxy.uvs[:, 0] > 0.01) & (proxy.uvs[:, 0] < 0.99) & (proxy.uvs[:, 1] > 0.01) & (proxy.uvs[:, 1] < 0.99)
    np.testing.assert_allclose(proxy.vertices[inner] @ normal, offset, rtol=1e-3)


def test_relative_depth_is_scaled_to_the_documented_median():
    proxy = build_proxy(box_on_plane() * 37.0, metric=False, step=1)
    assert np.median(proxy.vertices[:, 2]) == pytest.approx(RELATIVE_MEDIAN_DEPTH * 5.0 / 5.0, rel=1e-5)


def test_invalid_depth_leaves_holes_and_bad_input_is_refused():
    depth = box_on_plane()
    depth[:8, :8] = np.inf
    proxy = build_proxy(depth, step=4)
    assert len(proxy.faces) == 2 * (12 * 16 - 4)
    for bad, kwargs, match in (
        (np.zeros((H, W)), {}, "no positive finite"),
        (np.ones((2, H, W)), {}, r"\[H, W\]"),
        (box_on_plane(), {"step": 0}, "step"),
        (box_on_plane(), {"edge": -1.0}, "edge"),
        (box_on_plane(), {"intrinsics": np.eye(2)}, "intrinsics"),
    ):
        with pytest.raises(ProxyError, match=match):
            build_proxy(bad, **kwargs)
    with pytest.raises(ProxyError, match="field of view"):
        intrinsics_from_fov(W, H, 0.0)


def test_proxy_tracks_render_as_a_full_frame_at_frame_zero():
    proxy = build_proxy(box_on_plane(), step=2)
    poses = np.broadcast_to(np.eye(4), (3, 4, 4)).copy()
    poses[:, 0, 3] = [0.0, 0.2, 0.4]
    frames = render_tracking(proxy.tracks(poses), "mesh", 3)
    assert frames.shape == (3, H, W, 3)
    covered = (frames.max(axis=-1) > 0).mean(axis=(1, 2))
    assert covered[0] > 0.97  # gapless at the first view (the top-left corner's code is black)
    assert covered[2] < covered[0] - 0.05  # moved sideways: an edge of the frame shows nothing


def test_blender_camera_matrices_put_the_first_camera_at_the_origin_looking_along_y():
    from das_core.tracking.camera_motion import camera_path
    from das_core.tracking.proxy import OPENCV_TO_BLENDER, blender_camera_matrices

    path = camera_path("trans 0 0 -1")  # dolly in by one unit
    matrices = blender_camera_matrices(path)
    np.testing.assert_allclose(matrices[0][:3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(matrices[48][:3, 3], [0, 1, 0], atol=1e-12)  # moved forward along +Y
    point = np.array([0.3, -0.2, 2.0, 1.0])  # seen the same way by both conventions at the last frame
    in_blender_camera = np.linalg.inv(matrices[48]) @ OPENCV_TO_BLENDER @ point
    np.testing.assert_allclose(in_blender_camera[:3] * [1, -1, -1], (path[48] @ point)[:3], atol=1e-12)
