"""The tracks format (das-tracks/1): what moves, and the camera that sees it, frame by frame.

A `Tracks` holds world positions of N points over T frames (mesh vertices when `faces` is given),
the camera per frame in the OpenCV convention (x right, y down, z forward) and pixel intrinsics
for a `width` x `height` image. It is the hand-off between Blender export, the tracking-video
renderer, the CLI and the server. Stored as `.npz`; numpy only, so Blender's Python can use it.

`extra` is JSON metadata. The Blender exporter writes `scene`, `camera`, `warnings`, `objects` (the
exported objects' names, in vertex order) and `object_vertex_counts` (how many vertices each of
those objects has: the first count's vertices are the first object's, and so on), which
`Tracks.vertices_of` reads to pick objects. Files without the counts still load.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from das_core.errors import DasError, plural

FORMAT = "das-tracks/1"
_REQUIRED_KEYS = ("format", "points", "world_to_camera", "intrinsics", "width", "height")


class TracksError(DasError):
    """A tracks file or array that does not follow das-tracks/1 (the message names the field), or a
    question it cannot answer (an object it does not have)."""


@dataclass
class Tracks:
    """Points over time plus the camera, validated on construction.

    Arrays are converted to the format's dtypes (float32, int32, bool); shapes, finiteness and
    face indices are checked, and any problem raises `TracksError` naming the field.
    """

    points: np.ndarray  # float32 [T, N, 3] world positions
    world_to_camera: np.ndarray  # float32 [T, 4, 4], OpenCV camera convention
    intrinsics: np.ndarray  # float32 [T, 3, 3], pixels for width x height
    width: int
    height: int
    faces: np.ndarray | None = None  # int32 [F, 3]; None means points only
    frame_numbers: np.ndarray | None = None  # int32 [T]; defaults to 0..T-1
    fps: float = 24.0
    visibility: np.ndarray | None = None  # bool [T, N]; None means all visible
    extra: dict = field(default_factory=dict, repr=False)  # JSON-able metadata (scene, objects, warnings)

    def __post_init__(self) -> None:
        self.points = _as_array("points", self.points, np.float32, ndim=3)
        num_frames, num_points, dims = self.points.shape
        if num_frames < 1:
            raise TracksError("points has 0 frames; a tracks file needs at least one frame (T >= 1)")
        if dims != 3:
            raise TracksError(f"points must have shape [T, N, 3], got {list(self.points.shape)}")
        _check_finite("points", self.points)

        self.world_to_camera = _as_array("world_to_camera", self.world_to_camera, np.float32, ndim=3)
        _check_shape("world_to_camera", self.world_to_camera, (num_frames, 4, 4))
        _check_finite("world_to_camera", self.world_to_camera)

        self.intrinsics = _as_array("intrinsics", self.intrinsics, np.float32, ndim=3)
        _check_shape("intrinsics", self.intrinsics, (num_frames, 3, 3))
        _check_finite("intrinsics", self.intrinsics)

        self.width = _positive_int("width", self.width)
        self.height = _positive_int("height", self.height)

        if self.faces is not None:
            self.faces = _as_array("faces", self.faces, np.int32, ndim=2)
            if self.faces.shape[1] != 3:
                raise TracksError(f"faces must have shape [F, 3] (triangles), got {list(self.faces.shape)}")
            if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= num_points):
                bad = int(self.faces.min() if self.faces.min() < 0 else self.faces.max())
                raise TracksError(
                    f"faces refer to vertex {bad}, but points has only {num_points} vertices (0..{num_points - 1})"
                )

        if self.frame_numbers is None:
            self.frame_numbers = np.arange(num_frames, dtype=np.int32)
        self.frame_numbers = _as_array("frame_numbers", self.frame_numbers, np.int32, ndim=1)
        _check_shape("frame_numbers", self.frame_numbers, (num_frames,))

        self.fps = float(self.fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise TracksError(f"fps must be a positive number, got {self.fps}")

        if self.visibility is not None:
            self.visibility = _as_array("visibility", self.visibility, np.bool_, ndim=2)
            _check_shape("visibility", self.visibility, (num_frames, num_points))

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]

    @property
    def num_points(self) -> int:
        return self.points.shape[1]

    def take(self, frames: Sequence[int]) -> Tracks:
        """These tracks at the frames with indices `frames` (0 .. T - 1, in the order given): a new `Tracks`
        with the same points, faces, fps and extra."""
        index = np.asarray(frames, dtype=np.int64)
        if index.ndim != 1 or not len(index) or index.min() < 0 or index.max() >= self.num_frames:
            raise TracksError(f"frame indices must be a non-empty list within 0..{self.num_frames - 1}, got {frames!r}")
        return Tracks(
            points=self.points[index],
            world_to_camera=self.world_to_camera[index],
            intrinsics=self.intrinsics[index],
            width=self.width,
            height=self.height,
            faces=self.faces,
            frame_numbers=None if self.frame_numbers is None else self.frame_numbers[index],
            fps=self.fps,
            visibility=None if self.visibility is None else self.visibility[index],
            extra=self.extra,
        )

    def vertices_of(self, names: Sequence[str]) -> np.ndarray:
        """bool [N]: which points are vertices of the named objects (`extra["objects"]`)."""
        objects, counts = self.extra.get("objects"), self.extra.get("object_vertex_counts")
        if objects is None or counts is None:
            raise TracksError(
                "these tracks do not say which vertices belong to which object; export the scene again "
                "with this version of das (the add-on or das export) to choose objects"
            )
        whole = all(isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in counts)
        if not whole or len(counts) != len(objects) or sum(counts) != self.num_points:
            raise TracksError(
                f"extra object_vertex_counts must give one vertex count for each of the {len(objects)} "
                f"objects, summing to the {self.num_points} points; got {counts!r}"
            )
        unknown = [name for name in names if name not in objects]
        if unknown:
            raise TracksError(
                f"no object named {', '.join(map(repr, unknown))} in these tracks; they have "
                f"{', '.join(map(repr, objects))}"
            )
        owner = np.repeat(np.arange(len(objects)), counts)
        return np.isin(owner, [index for index, name in enumerate(objects) if name in names])

    def save(self, path: str | os.PathLike) -> None:
        """Write an uncompressed `.npz` (das-tracks/1)."""
        arrays = {
            "format": np.array(FORMAT),
            "points": self.points,
            "world_to_camera": self.world_to_camera,
            "intrinsics": self.intrinsics,
            "width": np.array(self.width, dtype=np.int32),
            "height": np.array(self.height, dtype=np.int32),
            "fps": np.array(self.fps, dtype=np.float32),
        }
        if self.frame_numbers is not None:  # always, after __post_init__
            arrays["frame_numbers"] = self.frame_numbers
        if self.faces is not None:
            arrays["faces"] = self.faces
        if self.visibility is not None:
            arrays["visibility"] = self.visibility
        if self.extra:
            arrays["extra"] = np.array(json.dumps(self.extra))
        with open(path, "wb") as file:  # a file object keeps numpy from appending ".npz"
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tracks:
        """Read and validate a das-tracks/1 `.npz`; any problem raises `TracksError` naming it."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise TracksError(f"{path}: no such tracks file")
        if not zipfile.is_zipfile(path):
            raise TracksError(f"{path}: not an .npz archive (a das-tracks/1 file is an .npz written by Tracks.save)")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise TracksError(f"{path}: not a readable .npz tracks file ({error})") from None

        missing = [key for key in _REQUIRED_KEYS if key not in arrays]
        if missing:
            raise TracksError(
                f"{path}: missing {plural(len(missing), 'key')}: {', '.join(missing)} "
                f"(das-tracks/1 needs {', '.join(_REQUIRED_KEYS)})"
            )
        found_format = str(arrays["format"])
        if found_format != FORMAT:
            raise TracksError(f"{path}: format is {found_format!r}, expected {FORMAT!r}")
        try:
            return cls(
                points=arrays["points"],
                world_to_camera=arrays["world_to_camera"],
                intrinsics=arrays["intrinsics"],
                width=_scalar("width", arrays["width"]),
                height=_scalar("height", arrays["height"]),
                faces=arrays.get("faces"),
                frame_numbers=arrays.get("frame_numbers"),
                fps=_scalar("fps", arrays["fps"]) if "fps" in arrays else 24.0,
                visibility=arrays.get("visibility"),
                extra=_extra(arrays["extra"]) if "extra" in arrays else {},
            )
        except TracksError as error:
            raise TracksError(f"{path}: {error}") from None


def _as_array(name: str, value, dtype, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != ndim:
        raise TracksError(f"{name} must have {ndim} dimensions, got shape {list(array.shape)}")
    if dtype is np.bool_:
        if array.dtype != np.bool_:
            raise TracksError(f"{name} must be boolean, got {array.dtype}")
        return array
    kind = np.dtype(dtype).kind
    if array.dtype.kind not in ("iu" if kind == "i" else "fiu"):
        raise TracksError(f"{name} must be {'integer' if kind == 'i' else 'numeric'}, got {array.dtype}")
    if kind == "i" and array.size:
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise TracksError(
                f"{name} has values outside the {np.dtype(dtype).name} range ({array.min()}..{array.max()})"
            )
    return np.ascontiguousarray(array, dtype=dtype)


def _check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != expected:
        raise TracksError(f"{name} must have shape {list(expected)}, got {list(array.shape)}")


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise TracksError(f"{name} has a non-finite value (NaN or inf) at index {list(index)}")


def _positive_int(name: str, value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise TracksError(f"{name} must be an integer, got {value!r}") from None
    if number != value or number <= 0:
        raise TracksError(f"{name} must be a positive integer, got {value!r}")
    return number


def _scalar(name: str, array: np.ndarray):
    if np.ndim(array) != 0:
        raise TracksError(f"{name} must be a single number, got shape {list(np.shape(array))}")
    return array.item()


def _extra(array: np.ndarray) -> dict:
    try:
        value = json.loads(str(array))
    except json.JSONDecodeError as error:
        raise TracksError(f"extra is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise TracksError(f"extra must be a JSON object, got {type(value).__name__}")
    return value
