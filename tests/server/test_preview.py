"""The preview backend on a rendered scene: a red square slides across a textured wall.

The tracking video comes from the real renderer (`render_tracking`), so its colours carry the
renderer's interpolation in linear light across the wall's two large triangles (R / 255 * W is
tens of pixels off there), and the reference image is the wall's texture with the square
painted where the first frame has it.
"""

from __future__ import annotations

import numpy as np
import pytest

from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.wire.protocol import JobRequest
from das_server.backends.preview import PreviewBackend

WIDTH, HEIGHT, FRAMES = 160, 120, 9
WALL_DEPTH, SQUARE_DEPTH = 10.0, 5.0
SIDE = 24  # the square's side in pixels
START, END = (24, 48), (112, 48)  # the square's top-left corner in the first and the last frame
RED = np.array([230, 30, 30])


class Control:
    def should_stop(self) -> bool:
        return False

    def progress(self, phase: str, step: int, total: int) -> None:
        pass


def to_camera(u: np.ndarray, v: np.ndarray, depth: float) -> np.ndarray:
    """Camera-space points [N, 3] that a camera at the origin (focal length WIDTH) sees at pixels (u, v)."""
    return np.stack([(u - WIDTH / 2) * depth / WIDTH, (v - HEIGHT / 2) * depth / WIDTH, np.full(len(u), depth)], axis=1)


def sliding_square() -> Tracks:
    """A wall of two triangles filling the frame, and a nearer square sliding from START to END."""
    wall = to_camera(np.array([0.0, WIDTH, 0, WIDTH]), np.array([0.0, 0, HEIGHT, HEIGHT]), WALL_DEPTH)
    corners = np.array([[0.0, 0], [SIDE, 0], [0, SIDE], [SIDE, SIDE]])
    frames = []
    for step in np.linspace(0.0, 1.0, FRAMES):
        left, top = np.add(START, step * np.subtract(END, START))
        frames.append(np.concatenate([wall, to_camera(left + corners[:, 0], top + corners[:, 1], SQUARE_DEPTH)]))
    intrinsics = np.array([[WIDTH, 0, WIDTH / 2], [0, WIDTH, HEIGHT / 2], [0, 0, 1.0]])
    return Tracks(
        points=np.array(frames),
        world_to_camera=np.tile(np.eye(4), (FRAMES, 1, 1)),
        intrinsics=np.tile(intrinsics, (FRAMES, 1, 1)),
        width=WIDTH,
        height=HEIGHT,
        faces=np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6]]),
    )


def square_at(corner: tuple[int, int], margin: int = 0) -> tuple[slice, slice]:
    """Rows and columns of the square with its top-left at `corner`, shrunk by `margin` on every side."""
    left, top = corner
    return slice(top + margin, top + SIDE - margin), slice(left + margin, left + SIDE - margin)


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, tracking video, preview frames)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    wave = np.sin(x / 5.0) * np.cos(y / 7.0)
    wall = np.stack([80 + 20 * wave, 130 + 25 * wave, 120 - 20 * wave], axis=-1)
    reference = np.rint(wall).astype(np.uint8)
    reference[square_at(START)] = RED
    tracking = render_tracking(sliding_square(), "mesh", FRAMES)
    request = JobRequest(prompt="a red square slides right", image=reference, tracking=tracking)
    frames = np.stack(list(PreviewBackend().generate(request, Control())))
    return reference, tracking, frames


def test_the_first_frame_is_the_reference_image(scene):
    reference, _, frames = scene
    np.testing.assert_array_equal(frames[0], reference)


def test_the_square_moves_and_leaves_no_ghost(scene):
    reference, tracking, frames = scene
    last = frames[-1].astype(int)
    assert (np.abs(tracking[-1][square_at(END)].astype(int) - tracking[0][square_at(START)]) <= 1).all()

    arrived = last[square_at(END, margin=1)]
    assert np.abs(arrived - RED).max() < 40  # the square's own pixels, where the square now is

    left_behind = last[square_at(START, margin=2)]
    assert np.abs(left_behind - RED).max(axis=-1).min() > 80  # no pixel there is anything like the square...
    # ... but what was around it: the inpainted hole's mean is the nearby wall's mean.
    surroundings = reference[square_at(START, margin=-8)].reshape(-1, 3)
    surroundings = surroundings[np.abs(surroundings.astype(int) - RED).max(axis=-1) > 80]
    assert np.abs(left_behind.reshape(-1, 3).mean(axis=0) - surroundings.mean(axis=0)).max() < 20


def test_the_still_wall_is_the_reference_untouched(scene):
    reference, _, frames = scene
    below = slice(START[1] + SIDE + 8, HEIGHT)  # rows the square never comes near
    for frame in frames:
        np.testing.assert_array_equal(frame[below], reference[below])
