"""DaS camera-motion strings to camera paths: "trans dx dy dz [f0 f1]; rot x|y|z deg [f0 f1]; spiral r [f0 f1]".

The grammar and signs are the DaS reference's (`CameraMotionGenerator.get_default_motion`); this is
our own implementation of them. Each motion gives, per frame, a world_to_camera matrix relative
to the first view, in the OpenCV camera convention (x right, y down, z forward): a point p of the
first view's camera space is seen at `M @ p`. So the matrix moves the points, not the camera:

- `trans dx dy dz`: points move by (dx, dy, dz); the camera moves the opposite way. Positive dx
  moves the camera left, positive dy up, positive dz back (zooms out), as the reference notes.
- `rot x|y|z deg`: points rotate by `deg` degrees about the camera's axis (right-handed in camera
  space): the camera turns the other way. `rot y 10` turns the view to the left.
- `spiral r`: the reference's spiral (`spiral_poses`): a loop of radius 0.1 r in x and 0.03 r in y,
  forward then back (z = -0.05 r sin(pi t)), always looking at (0, 0, r / 2); its matrix is used as
  world_to_camera as the reference does.

Frames: each motion runs from f0 to f1 (default the whole clip, 0 to frames - 1), linearly in its
amount, holds its end value afterwards and is the identity before f0. Frames are clamped to the
clip and swapped when reversed, as in the reference; f0 == f1 is refused (the reference divides
by zero there). Motions separated by ';' compose in order: M = M1 @ M2 @ ... (the reference's
`final_motion @ current_motion`), so the last motion acts on the points first.
"""

from __future__ import annotations

import math

import numpy as np

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

__all__ = ["CameraMotionError", "camera_path", "orbit_path", "rotation"]

_PARAMETERS = {"trans": 3, "rot": 2, "spiral": 1}
_USAGE = "use 'trans DX DY DZ [F0 F1]', 'rot x|y|z DEG [F0 F1]' or 'spiral RADIUS [F0 F1]', joined by ';'"


class CameraMotionError(DasError):
    """A camera-motion string that does not follow the grammar; the message names the part."""


def camera_path(motion: str, frames: int = DAS_WINDOW.frames) -> np.ndarray:
    """The world_to_camera matrices float64 [frames, 4, 4] of a DaS camera-motion string."""
    if not isinstance(motion, str):
        raise CameraMotionError(f"camera motion must be text, got {type(motion).__name__}; {_USAGE}")
    if isinstance(frames, bool) or int(frames) != frames or frames < 2:
        raise CameraMotionError(f"a camera move needs at least 2 frames, got {frames!r}")
    path = np.broadcast_to(np.eye(4), (frames, 4, 4)).copy()
    for part in (piece.strip() for piece in motion.split(";")):
        if part:
            path = path @ _one_motion(part, frames)
    return path


def orbit_path(degrees: float, pivot_depth: float, frames: int = DAS_WINDOW.frames) -> np.ndarray:
    """The camera circling `degrees` about the vertical through the point `pivot_depth` ahead, looking at it.

    Positive degrees orbit to the right: the scene turns about the pivot as `rot y` turns it about the camera.
    """
    if not (math.isfinite(degrees) and math.isfinite(pivot_depth) and pivot_depth > 0):
        raise CameraMotionError(
            f"an orbit needs a finite angle and a positive pivot depth, got {degrees}, {pivot_depth}"
        )
    to_pivot, back = np.eye(4), np.eye(4)
    to_pivot[2, 3], back[2, 3] = -pivot_depth, pivot_depth
    return np.stack([back @ rotation("y", degrees * t) @ to_pivot for t in np.linspace(0.0, 1.0, frames)])


def rotation(axis: str, degrees: float) -> np.ndarray:
    """4x4 rotation by `degrees` about camera axis `axis` (x, y or z), right-handed."""
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = np.eye(4)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _one_motion(text: str, frames: int) -> np.ndarray:
    words = text.lower().split()
    kind, values = words[0], words[1:]
    if kind not in _PARAMETERS:
        raise CameraMotionError(f"unknown camera motion {words[0]!r} in {text!r}; {_USAGE}")
    count = _PARAMETERS[kind]
    if len(values) not in (count, count + 2):
        raise CameraMotionError(
            f"{kind} takes {count} value(s), optionally followed by a start and an end frame; got {text!r}"
        )
    first, last = _frame_range(values[count:], frames, text)
    if kind == "rot" and values[0] not in ("x", "y", "z"):
        raise CameraMotionError(f"rot needs an axis x, y or z, got {values[0]!r} in {text!r}")
    numbers = [_number(value, text) for value in (values[1:count] if kind == "rot" else values[:count])]
    spiral = _spiral(numbers[0], frames) if kind == "spiral" else None
    path = np.broadcast_to(np.eye(4), (frames, 4, 4)).copy()
    for frame in range(first, frames):
        t = min(1.0, (frame - first) / (last - first))
        if kind == "trans":
            path[frame, :3, 3] = np.array(numbers) * t
        elif kind == "rot":
            path[frame] = rotation(values[0], numbers[0] * t)
        else:
            assert spiral is not None
            path[frame] = spiral[int(t * (frames - 1))]
    return path


def _frame_range(values: list[str], frames: int, text: str) -> tuple[int, int]:
    if not values:
        return 0, frames - 1
    try:
        first, last = (min(frames - 1, max(0, int(value))) for value in values)
    except ValueError:
        raise CameraMotionError(
            f"start and end frames must be whole numbers, got {' '.join(values)!r} in {text!r}"
        ) from None
    first, last = min(first, last), max(first, last)
    if first == last:
        raise CameraMotionError(f"{text!r} starts and ends at frame {first}; give an end frame after the start")
    return first, last


def _number(value: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise CameraMotionError(f"{value!r} in {text!r} is not a number; {_USAGE}")
    return number


def _spiral(radius: float, frames: int) -> np.ndarray:
    """The reference's `spiral_poses(radius)`: [frames, 4, 4] look-at matrices used as world_to_camera."""
    t = np.linspace(0.0, 1.0, frames)
    r = np.sin(np.pi * t) * radius * 0.1
    theta = 2.0 * np.pi * t
    positions = np.stack([r * np.sin(theta), r * np.cos(theta) * 0.3, -r * 0.5], axis=1)
    target = np.array([0.0, 0.0, radius * 0.5])
    poses = np.broadcast_to(np.eye(4), (frames, 4, 4)).copy()
    for index, position in enumerate(positions):
        direction = (target - position) / np.linalg.norm(target - position)
        right = np.cross([0.0, 1.0, 0.0], direction)
        right /= np.linalg.norm(right)
        up = np.cross(direction, right)
        poses[index, :3, :3] = np.linalg.inv(np.stack([right, up, direction]))
        poses[index, :3, 3] = position
    return poses
