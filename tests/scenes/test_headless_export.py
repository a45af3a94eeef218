"""`das export`: a committed example .blend through the CLI (bpy subprocess, or a Blender executable)
gives exactly the tracks the add-on exports in this process, and the committed tracks are current."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video

bpy = pytest.importorskip("bpy")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WALK = EXAMPLES / "walk_cycle" / "walk_cycle.blend"


def export_in_process(blend: Path, **options) -> Tracks:
    """The add-on's exporter run here, on a freshly opened file (then back to factory settings)."""
    from blender_addon.export import export_tracks

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    try:
        return export_tracks(bpy.context.scene, **options)
    finally:
        bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")


def assert_same_tracks(actual: Tracks, expected: Tracks) -> None:
    """Float arrays agree to float32 rounding; faces, frame numbers and the image format exactly."""
    for name in ("points", "world_to_camera", "intrinsics"):
        assert_close_float32(getattr(actual, name), getattr(expected, name), name)
    np.testing.assert_array_equal(actual.faces, expected.faces)
    np.testing.assert_array_equal(actual.frame_numbers, expected.frame_numbers)
    assert (actual.width, actual.height, actual.fps) == (expected.width, expected.height, expected.fps)


def assert_close_float32(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    """Equal within about 80 float32 steps of the array's largest value: the exporter's matrix products
    round differently with another numpy, BLAS or CPU (a moved vertex or camera is far beyond this)."""
    tolerance = 1e-5 * float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance, err_msg=name)


def test_cli_export_equals_in_process_export(tmp_path, capsys):
    output, reference = tmp_path / "walk.npz", tmp_path / "ref.png"
    code = main(
        ["export", str(WALK), "-o", str(output), "--frames", "5:16", "--camera", "Camera",
         "--reference-render", str(reference), "--engine", "workbench"]
    )  # fmt: skip
    assert code == 0
    exported = Tracks.load(output)
    expected = export_in_process(WALK, frame_start=5, frame_end=16, step=1)
    assert_same_tracks(exported, expected)
    np.testing.assert_array_equal(exported.frame_numbers, np.arange(5, 17))  # every frame of the range
    assert f"wrote {output}" in capsys.readouterr().out

    image = read_video(reference)[0]
    assert image.shape == (480, 720, 3)
    assert image.std() > 5  # a rendered scene, not a blank frame


def test_committed_example_tracks_are_current():
    """examples/*/tracks.npz must be what the current exporter makes of the committed .blend files."""
    for name in ("walk_cycle", "camera_orbit", "thrown_ball"):
        committed = Tracks.load(EXAMPLES / name / "tracks.npz")
        assert_same_tracks(committed, export_in_process(EXAMPLES / name / f"{name}.blend"))


def test_export_with_blender_executable(tmp_path, capsys):
    """--blender runs `blender -b --factory-startup FILE ... --python SCRIPT -- ARGS`.

    No Blender executable is installed here, so a stand-in plays it: it checks the command line
    Blender would get and runs the script with this Python's bpy, as Blender would run it.
    """
    fake = tmp_path / "blender"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:2] == ['-b', '--factory-startup'] and args[2].endswith('.blend'), args\n"
        "assert args[3:5] == ['--python-exit-code', '3'] and args[5] == '--python' and args[7] == '--', args\n"
        "sys.exit(subprocess.run([sys.executable, args[6], '--', args[8]]).returncode)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "walk.npz"
    assert main(["export", str(WALK), "-o", str(output), "--blender", str(fake)]) == 0
    exported = Tracks.load(output)
    assert_same_tracks(exported, export_in_process(WALK, step=1))
    np.testing.assert_array_equal(exported.frame_numbers, np.arange(1, 50))  # by default, every frame of the scene

    assert main(["export", str(WALK), "-o", str(output), "--blender", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--camera", "NoSuchCamera"], "no object named 'NoSuchCamera'; cameras in this file: Camera"),
        (["--frames", "40:5"], "ends before it starts"),
        (["--frames", "five"], "is not START:END"),
    ],
)
def test_export_errors_name_the_problem(tmp_path, capsys, arguments, message):
    assert main(["export", str(WALK), "-o", str(tmp_path / "x.npz"), *arguments]) == 1
    error = capsys.readouterr().err
    assert message in error.splitlines()[-1] and "Traceback" not in error  # one readable line
    assert not (tmp_path / "x.npz").exists()


def test_export_of_a_missing_file(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.blend"), "-o", str(tmp_path / "x.npz")]) == 1
    assert "no such .blend file" in capsys.readouterr().err


def test_blender_errors_reach_the_user(tmp_path, capsys):
    """A scene without a camera: the add-on's DasError comes back from the subprocess as one line."""
    blend = tmp_path / "no_camera.blend"
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    assert main(["export", str(blend), "-o", str(tmp_path / "x.npz")]) == 1
    assert "has no camera" in capsys.readouterr().err
    assert os.path.exists(blend)
