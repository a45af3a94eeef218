"""The das-tracks/1 format: real .npz files round-trip, and each kind of bad file is refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.errors import DasError
from das_core.tracking.tracks import FORMAT, Tracks, TracksError

T, N = 3, 5


def _arrays() -> dict[str, np.ndarray]:
    """A valid das-tracks/1 file's arrays: a small mesh seen by a camera that moves along x."""
    rng = np.random.default_rng(0)
    world_to_camera = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
    world_to_camera[:, 0, 3] = np.arange(T) * 0.1
    intrinsics = np.tile(np.array([[500, 0, 360], [0, 500, 240], [0, 0, 1]], dtype=np.float32), (T, 1, 1))
    return {
        "format": np.array(FORMAT),
        "points": rng.normal(size=(T, N, 3)).astype(np.float32) + [0, 0, 5],
        "faces": np.array([[0, 1, 2], [2, 3, 4]], dtype=np.int32),
        "world_to_camera": world_to_camera,
        "intrinsics": intrinsics,
        "width": np.array(720, dtype=np.int32),
        "height": np.array(480, dtype=np.int32),
        "frame_numbers": np.arange(10, 10 + T, dtype=np.int32),
        "fps": np.array(24.0, dtype=np.float32),
        "visibility": rng.random((T, N)) > 0.3,
    }


def _write(tmp_path, **changes) -> str:
    """Write a tracks file by hand (not through Tracks.save) with some keys changed or removed (None)."""
    arrays = {**_arrays(), **changes}
    path = tmp_path / "tracks.npz"
    with open(path, "wb") as file:
        np.savez(file, **{key: value for key, value in arrays.items() if value is not None})
    return str(path)


def test_round_trip_keeps_every_field(tmp_path):
    arrays = _arrays()
    tracks = Tracks(
        points=arrays["points"],
        faces=arrays["faces"],
        world_to_camera=arrays["world_to_camera"],
        intrinsics=arrays["intrinsics"],
        width=720,
        height=480,
        frame_numbers=arrays["frame_numbers"],
        fps=12.5,
        visibility=arrays["visibility"],
        extra={"scene": "Shot 010", "warnings": ["Cloth: vertex count changes"]},
    )
    tracks.save(tmp_path / "mesh.npz")
    back = Tracks.load(tmp_path / "mesh.npz")
    for name in ("points", "faces", "world_to_camera", "intrinsics", "frame_numbers", "visibility"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tracks, name))
        assert getattr(back, name).dtype == getattr(tracks, name).dtype
    assert (back.width, back.height, back.fps) == (720, 480, 12.5)
    assert back.extra == tracks.extra
    assert (back.num_frames, back.num_points) == (T, N)
    assert back.points.dtype == np.float32 and back.faces.dtype == np.int32 and back.visibility.dtype == bool


def test_points_only_tracks_get_defaults(tmp_path):
    arrays = _arrays()
    tracks = Tracks(
        points=arrays["points"].astype(np.float64),  # converted to the format's float32
        world_to_camera=arrays["world_to_camera"],
        intrinsics=arrays["intrinsics"],
        width=64,
        height=48,
    )
    tracks.save(tmp_path / "points.npz")
    with np.load(tmp_path / "points.npz") as raw:
        assert "faces" not in raw.files and "visibility" not in raw.files
        assert str(raw["format"]) == FORMAT
    back = Tracks.load(tmp_path / "points.npz")
    assert back.faces is None and back.visibility is None
    np.testing.assert_array_equal(back.frame_numbers, np.arange(T))
    assert back.points.dtype == np.float32 and back.fps == 24.0


def test_hand_written_file_with_optional_keys_missing_loads(tmp_path):
    path = _write(tmp_path, faces=None, frame_numbers=None, fps=None, visibility=None)
    tracks = Tracks.load(path)
    assert tracks.faces is None and tracks.num_frames == T


BAD_FILES = [
    # (changes to a valid file, words the error must contain)
    ({"points": np.zeros((T, N, 2), np.float32)}, r"points must have shape \[T, N, 3\]"),
    ({"points": np.zeros((T, N), np.float32)}, "points must have 3 dimensions"),
    ({"points": np.zeros((0, N, 3), np.float32)}, "0 frames"),
    ({"world_to_camera": np.zeros((T, 3, 4), np.float32)}, r"world_to_camera must have shape \[3, 4, 4\]"),
    ({"world_to_camera": np.zeros((T + 1, 4, 4), np.float32)}, r"world_to_camera must have shape \[3, 4, 4\]"),
    ({"intrinsics": np.zeros((T, 4, 4), np.float32)}, r"intrinsics must have shape \[3, 3, 3\]"),
    ({"faces": np.array([[0, 1, 2, 3]], np.int32)}, r"faces must have shape \[F, 3\]"),
    ({"faces": np.array([[0, 1, N]], np.int32)}, f"faces refer to vertex {N}, but points has only {N} vertices"),
    ({"faces": np.array([[0, -1, 2]], np.int32)}, "faces refer to vertex -1"),
    ({"faces": np.array([[0, 1, 2**32]], np.int64)}, "faces has values outside the int32 range"),
    ({"faces": np.array([[0.0, 1.0, 2.0]])}, "faces must be integer"),
    ({"frame_numbers": np.arange(T + 1, dtype=np.int32)}, r"frame_numbers must have shape \[3\]"),
    ({"visibility": np.ones((T, N + 1), bool)}, r"visibility must have shape \[3, 5\]"),
    ({"visibility": np.ones((T, N), np.uint8)}, "visibility must be boolean"),
    ({"width": np.array(0)}, "width must be a positive integer"),
    ({"height": np.array([480, 480])}, "height must be a single number"),
    ({"fps": np.array(-1.0)}, "fps must be a positive number"),
    ({"format": np.array("das-tracks/2")}, "format is 'das-tracks/2', expected 'das-tracks/1'"),
    ({"points": None}, "missing 1 key: points"),
    ({"intrinsics": None, "width": None}, "missing 2 keys: intrinsics, width"),
]


@pytest.mark.parametrize("changes, words", BAD_FILES, ids=lambda value: str(value)[:40])
def test_bad_files_are_refused_naming_the_problem(tmp_path, changes, words):
    path = _write(tmp_path, **changes)
    with pytest.raises(TracksError, match=words) as raised:
        Tracks.load(path)
    assert str(raised.value).startswith(path)  # the message names the file too
    assert isinstance(raised.value, DasError)


@pytest.mark.parametrize("name", ["points", "world_to_camera", "intrinsics"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_with_their_index(tmp_path, name, bad):
    array = _arrays()[name].copy()
    array[1, 2, 0] = bad
    with pytest.raises(TracksError, match=rf"{name} has a non-finite value \(NaN or inf\) at index \[1, 2, 0\]"):
        Tracks.load(_write(tmp_path, **{name: array}))


def test_files_that_are_not_tracks_are_refused(tmp_path):
    with pytest.raises(TracksError, match="no such tracks file"):
        Tracks.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(TracksError, match="not an .npz archive"):
        Tracks.load(tmp_path / "text.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(TracksError, match="not an .npz archive"):
        Tracks.load(tmp_path / "array.npy")
    truncated = open(_write(tmp_path), "rb").read()[:300]
    (tmp_path / "truncated.npz").write_bytes(truncated)
    with pytest.raises(TracksError, match="truncated.npz: not"):
        Tracks.load(tmp_path / "truncated.npz")
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as file:
        np.savez(file, **{**_arrays(), "format": np.array([FORMAT], dtype=object)})
    with pytest.raises(TracksError, match="pickled.npz: not a readable .npz"):
        Tracks.load(pickled)


def test_constructor_validates_like_load():
    arrays = _arrays()
    with pytest.raises(TracksError, match="points has a non-finite value"):
        Tracks(
            points=np.full((1, 2, 3), np.nan),
            world_to_camera=arrays["world_to_camera"][:1],
            intrinsics=arrays["intrinsics"][:1],
            width=4,
            height=4,
        )


def test_extra_metadata_that_is_not_a_json_object_is_refused(tmp_path):
    with pytest.raises(TracksError, match="extra must be a JSON object"):
        Tracks.load(_write(tmp_path, extra=np.array("[1, 2]")))
    with pytest.raises(TracksError, match="extra is not valid JSON"):
        Tracks.load(_write(tmp_path, extra=np.array("{oops")))


def _with_objects(**extra) -> Tracks:
    arrays = _arrays()
    return Tracks(
        points=arrays["points"],
        faces=arrays["faces"],
        world_to_camera=arrays["world_to_camera"],
        intrinsics=arrays["intrinsics"],
        width=720,
        height=480,
        extra=extra,
    )


def test_vertices_of_picks_objects_by_the_exported_counts(tmp_path):
    tracks = _with_objects(objects=["Floor", "Empty", "Cube", "Ball"], object_vertex_counts=[2, 0, 1, 2])
    tracks.save(tmp_path / "objects.npz")
    back = Tracks.load(tmp_path / "objects.npz")
    assert back.extra["object_vertex_counts"] == [2, 0, 1, 2]
    np.testing.assert_array_equal(back.vertices_of(["Floor"]), [True, True, False, False, False])
    np.testing.assert_array_equal(back.vertices_of(["Ball", "Cube"]), [False, False, True, True, True])
    assert not back.vertices_of(["Empty"]).any()


@pytest.mark.parametrize(
    ("extra", "names", "words"),
    [
        ({"objects": ["Floor", "Ball"]}, ["Ball"], "export the scene again with this version of das"),
        ({}, ["Ball"], "do not say which vertices belong to which object"),
        (
            {"objects": ["Floor", "Ball"], "object_vertex_counts": [2, 3]},
            ["Lamp", "Ball", "Sky"],
            "no object named 'Lamp', 'Sky' in these tracks; they have 'Floor', 'Ball'",
        ),
        ({"objects": ["Floor", "Ball"], "object_vertex_counts": [2, 2]}, ["Ball"], "summing to the 5 points"),
        (
            {"objects": ["Floor", "Ball"], "object_vertex_counts": [5]},
            ["Ball"],
            "one vertex count for each of the 2 objects",
        ),
        ({"objects": ["Floor", "Ball"], "object_vertex_counts": [2.5, 2.5]}, ["Ball"], "one vertex count"),
    ],
)
def test_vertices_of_refuses_what_it_cannot_answer(extra, names, words):
    with pytest.raises(TracksError, match=words):
        _with_objects(**extra).vertices_of(names)
