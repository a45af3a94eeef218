"""DaS camera-motion strings: the reference's grammar, frame ranges and signs."""

import math

import numpy as np
import pytest

from das_core.tracking.camera_motion import CameraMotionError, camera_path, orbit_path, rotation


def seen_at(path: np.ndarray, point, frame: int) -> np.ndarray:
    return (path[frame] @ np.append(point, 1.0))[:3]


def test_trans_moves_points_linearly_over_its_frames_then_holds():
    path = camera_path("trans 0.5 -0.2 1 10 30")
    assert path.shape == (49, 4, 4)
    np.testing.assert_allclose(path[:11], np.broadcast_to(np.eye(4), (11, 4, 4)))
    np.testing.assert_allclose(path[20, :3, 3], [0.25, -0.1, 0.5])
    np.testing.assert_allclose(path[30:, :3, 3], np.broadcast_to([0.5, -0.2, 1.0], (19, 3)))


def test_signs_follow_the_reference_positive_is_left_up_and_out():
    point = np.array([0.0, 0.0, 2.0])  # straight ahead
    left = seen_at(camera_path("trans 0.3 0 0"), point, 48)
    assert left[0] > 0  # the scene slides right: the camera moved left
    up = seen_at(camera_path("trans 0 0.3 0"), point, 48)
    assert up[1] > 0  # y is down: the scene slides down, the camera moved up
    out = seen_at(camera_path("trans 0 0 0.5"), point, 48)
    assert out[2] > 2.0  # farther away: zoomed out
    turned = seen_at(camera_path("rot y 10"), point, 48)
    assert turned[0] == pytest.approx(2.0 * math.sin(math.radians(10)))


def test_rotations_match_the_reference_matrices():
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    np.testing.assert_allclose(rotation("x", 30)[:3, :3], [[1, 0, 0], [0, c, -s], [0, s, c]])
    np.testing.assert_allclose(rotation("y", 30)[:3, :3], [[c, 0, s], [0, 1, 0], [-s, 0, c]])
    np.testing.assert_allclose(rotation("z", 30)[:3, :3], [[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(camera_path("rot x 30 0 10")[10], rotation("x", 30))


def test_motions_compose_in_order_and_frames_clamp_and_swap():
    path = camera_path("trans 0 0 1 0 20; rot y 20 20 40")
    np.testing.assert_allclose(path[40], camera_path("trans 0 0 1")[48] @ rotation("y", 20))
    np.testing.assert_allclose(camera_path("trans 1 0 0 60 -5"), camera_path("trans 1 0 0"))
    np.testing.assert_allclose(camera_path("TRANS 1 0 0 ;; "), camera_path("trans 1 0 0"))
    assert camera_path("trans 0 0 1", frames=5)[2, 2, 3] == pytest.approx(0.5)


def test_spiral_follows_the_reference_formula():
    path = camera_path("spiral 2")
    np.testing.assert_allclose(path[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(path[48], np.eye(4), atol=1e-12)
    t = 12 / 48  # frame 12: r = sin(pi t) * 2 * 0.1, theta = 2 pi t
    r = math.sin(math.pi * t) * 0.2
    position = np.array([r * math.sin(2 * math.pi * t), r * math.cos(2 * math.pi * t) * 0.3, -0.5 * r])
    np.testing.assert_allclose(path[12, :3, 3], position)
    forward = np.array([0.0, 0.0, 1.0]) - position
    np.testing.assert_allclose(path[12, :3, 2], forward / np.linalg.norm(forward))  # third column: look direction


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("zoom 1", "unknown camera motion"),
        ("trans 1 0", "takes 3 value"),
        ("rot w 10", "axis x, y or z"),
        ("rot y ten", "not a number"),
        ("trans 0 0 nan", "not a number"),
        ("spiral 1 5 5", "starts and ends at frame 5"),
        ("trans 0 0 1 a b", "whole numbers"),
    ],
)
def test_bad_strings_are_refused_with_the_grammar(text, match):
    with pytest.raises(CameraMotionError, match=match):
        camera_path(text)


def test_orbit_circles_the_pivot_and_keeps_it_centred():
    path = orbit_path(30.0, 2.0)
    pivot = np.array([0.0, 0.0, 2.0, 1.0])
    for frame in (0, 20, 48):
        np.testing.assert_allclose(path[frame] @ pivot, pivot, atol=1e-12)  # straight ahead, same distance
    centre = np.linalg.inv(path[48])[:3, 3]  # the camera's position in the first view's space
    assert centre[0] > 0 and np.linalg.norm(centre - pivot[:3]) == pytest.approx(2.0)  # went right, on the circle
    with pytest.raises(CameraMotionError, match="pivot"):
        orbit_path(10.0, 0.0)
