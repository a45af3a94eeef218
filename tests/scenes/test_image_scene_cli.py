"""`das image-scene`: a picture and its depth file to a saved .blend (real bpy, in a subprocess), which
opens with the proxy, its camera and the picture as reference, and which `das export` then exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from das_core.cli import main
from das_core.tracking.proxy import build_proxy, intrinsics_from_fov
from das_core.tracking.tracks import Tracks

pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh Python: opens the saved file with the add-on registered and prints what it holds.
_INSPECT = """
import json, os, sys
import bpy, blender_addon
blender_addon.register()
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
camera = scene.camera
meshes = sorted(obj.name for obj in scene.objects if obj.type == "MESH")
faces = sum(len(bpy.data.objects[name].data.polygons) for name in meshes)
print(json.dumps({
    "scene": scene.name, "camera": camera.name, "lens": camera.data.lens, "meshes": meshes, "faces": faces,
    "resolution": [scene.render.resolution_x, scene.render.resolution_y], "frames": [scene.frame_start, scene.frame_end],
    "reference": scene.das.reference, "reference_image": scene.das.reference_image,
    "texture": os.path.normpath(bpy.path.abspath(  # saved relative to the .blend, as Blender does
        bpy.data.objects[meshes[0]].active_material.node_tree.nodes.active.image.filepath)),
    "keyed": camera.animation_data is not None and camera.animation_data.action is not None,
}))
"""


@pytest.fixture
def picture(tmp_path: Path) -> tuple[Path, Path]:
    """(picture.png 32x24, depth.npy): a near box (2 units) in front of a far wall (4 units)."""
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "picture.png")
    depth = np.full((24, 32), 4.0, np.float32)
    depth[6:18, 8:20] = 2.0
    np.save(tmp_path / "depth.npy", depth)
    return tmp_path / "picture.png", tmp_path / "depth.npy"


def inspect(blend: Path) -> dict:
    import json

    finished = subprocess.run(
        [sys.executable, "-c", _INSPECT, str(blend)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_image_scene_saves_a_scene_that_opens_and_exports(picture, tmp_path, capsys):
    image, depth = picture
    blend = tmp_path / "out" / "scene.blend"
    assert main(["image-scene", str(image), "-o", str(blend), "--depth", str(depth), "--step", "2", "--fov", "50",
                 "--frames", "25", "--motion", "trans 0 0 -0.5"]) == 0  # fmt: skip
    assert f"wrote {blend}" in capsys.readouterr().out

    saved = inspect(blend)
    assert saved["scene"] == "picture" and saved["camera"] == "picture camera" and saved["keyed"]
    assert saved["meshes"] == ["picture part 0", "picture part 1"]  # the wall and the box, split at the depth edge
    assert saved["faces"] == 2 * 16 * 12
    assert saved["resolution"] == [32, 24] and saved["frames"] == [0, 24]
    assert saved["lens"] == pytest.approx(18 / np.tan(np.radians(25)), rel=1e-5)
    assert saved["reference"] == "IMAGE" and saved["reference_image"] == str(image)
    assert saved["texture"] == str(image)

    tracks_path = tmp_path / "scene.npz"
    assert main(["export", str(blend), "-o", str(tracks_path)]) == 0  # every frame of the scene's 0..24
    tracks = Tracks.load(tracks_path)
    assert (tracks.width, tracks.height, tracks.num_frames) == (32, 24, 25)
    # The exported first view is the proxy's: every vertex lands where build_proxy put it.
    proxy = build_proxy(np.load(depth), intrinsics_from_fov(32, 24, 50), step=2)
    first = np.sort(np.round(project(tracks, 0), 3), axis=0)
    expected = np.sort(np.round(project_points(proxy.vertices, np.eye(4), proxy.intrinsics), 3), axis=0)
    np.testing.assert_allclose(first, expected, atol=1e-2)
    # The dolly keyed by --motion: the camera ends 0.5 units closer (OpenCV z forward).
    travelled = np.linalg.inv(tracks.world_to_camera[-1])[:3, 3] - np.linalg.inv(tracks.world_to_camera[0])[:3, 3]
    assert np.linalg.norm(travelled) == pytest.approx(0.5, abs=1e-4)


def project(tracks: Tracks, frame: int) -> np.ndarray:
    return project_points(tracks.points[frame], tracks.world_to_camera[frame], tracks.intrinsics[frame])


def project_points(points: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    pixels = camera @ np.asarray(intrinsics).T
    return pixels[:, :2] / pixels[:, 2:]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--depth", "{bad}"], "is 32x10, the image is 32x24; give a depth map at the image's size"),
        (["--server", "tcp://127.0.0.1:9", "--timeout", "1"], "no depth for picture.png: no das server answered"),
        (["--depth", "{depth}", "--motion", "zoom 2"], "unknown camera motion 'zoom'"),
    ],
)
def test_image_scene_errors_name_the_problem(picture, tmp_path, capsys, arguments, message):
    image, depth = picture
    np.save(tmp_path / "bad.npy", np.ones((10, 32), np.float32))
    arguments = [a.format(bad=tmp_path / "bad.npy", depth=depth) for a in arguments]
    blend = tmp_path / "scene.blend"
    assert main(["image-scene", str(image), "-o", str(blend), *arguments]) == 1
    error = capsys.readouterr().err
    assert message in error.splitlines()[-1] and "Traceback" not in error
    assert not blend.exists()


def test_image_scene_refuses_what_is_not_a_picture(picture, tmp_path, capsys):
    _, depth = picture
    (tmp_path / "junk.png").write_text("not a picture")
    for path, message in ((tmp_path / "junk.png", "not a readable image"), (tmp_path / "none.png", "no such picture")):
        assert main(["image-scene", str(path), "-o", str(tmp_path / "s.blend"), "--depth", str(depth)]) == 1
        assert message in capsys.readouterr().err


def test_image_scene_with_blender_executable(picture, tmp_path):
    """--blender runs `blender -b --factory-startup --python-exit-code 3 --python SCRIPT -- ARGS` (no file to
    open); a stand-in checks that command line and runs the script with this Python's bpy, as Blender would."""
    image, depth = picture
    fake = tmp_path / "blender"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:4] == ['-b', '--factory-startup', '--python-exit-code', '3'], args\n"
        "assert args[4] == '--python' and args[6] == '--', args\n"
        "sys.exit(subprocess.run([sys.executable, args[5], '--', args[7]]).returncode)\n"
    )
    fake.chmod(0o755)
    blend = tmp_path / "scene.blend"
    assert main(["image-scene", str(image), "-o", str(blend), "--depth", str(depth), "--no-split",
                 "--blender", str(fake)]) == 0  # fmt: skip
    assert inspect(blend)["meshes"] == ["picture"]
