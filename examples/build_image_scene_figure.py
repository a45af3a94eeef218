"""Make `examples/images/image_scene.png` (README's "From one picture" picture) from a committed example.

Run from anywhere with a Python that has the bpy module: `python examples/build_image_scene_figure.py`.

The source picture is `camera_orbit/reference.png` (the scene's first frame). Its depth is the true
one: rays cast from the scene's camera through every pixel centre into `camera_orbit.blend`, z
along the camera axis; rays that hit nothing (the sky) stay NaN, holes in the proxy. Then `das image-scene` builds the proxy scene (rendered with Workbench from the side) and
`das camera-move` moves the camera, whose last tracking frame is the third panel.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector
from PIL import Image

from das_core.cli import main as das
from das_core.tracking.contact_sheet import image_grid
from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video

EXAMPLES = Path(__file__).resolve().parent
SOURCE = EXAMPLES / "camera_orbit"
OUTPUT = EXAMPLES / "images" / "image_scene.png"
MOTION = "trans 1 0 -1; rot y -8"
SIDE_TURN_DEG = 35.0  # the side view circles the picture's centre by this much, from above
PANEL = (360, 240)


def true_depth(blend: Path, width: int, height: int) -> tuple[np.ndarray, float]:
    """(depth [H, W] z distances from the scene camera at the first frame, horizontal field of view in degrees)."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    scene.frame_set(scene.frame_start)
    camera = scene.camera
    if camera.data.shift_x or camera.data.shift_y or camera.data.sensor_fit == "VERTICAL":
        raise SystemExit(
            f"{blend.name}: the camera has a lens shift or vertical sensor fit; this script assumes neither"
        )
    fov = math.degrees(camera.data.angle_x)
    focal = width / 2.0 / math.tan(camera.data.angle_x / 2.0)
    rotation, origin = camera.matrix_world.to_3x3().normalized(), camera.matrix_world.translation
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depth = np.full((height, width), np.nan)
    for row in range(height):
        for column in range(width):
            # OpenCV ray (x right, y down, z forward) in Blender's camera axes (y up, looking down -z).
            x, y = (column + 0.5 - width / 2.0) / focal, (row + 0.5 - height / 2.0) / focal
            direction = rotation @ Vector((x, -y, -1.0))
            hit, location, *_ = scene.ray_cast(depsgraph, origin, direction.normalized())
            if hit:
                depth[row, column] = (location - origin).dot(direction) / direction.length_squared
    return depth.astype(np.float32), fov


def side_view(blend: Path, output: Path, median_depth: float) -> None:
    """A Workbench render (texture colours, flat light) of the proxy scene from above and to the side."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    centre = Vector((0.0, median_depth, 0.0))  # the picture's centre: the first camera looks along +Y
    turn = Matrix.Rotation(math.radians(SIDE_TURN_DEG), 4, "Z") @ Matrix.Rotation(math.radians(-20), 4, "X")
    data = bpy.data.cameras.new("side")
    data.lens = 30.0
    side = bpy.data.objects.new("side", data)
    scene.collection.objects.link(side)
    side.matrix_world = Matrix.Translation(centre) @ turn @ Matrix.Translation(-centre) @ scene.camera.matrix_world
    side.location -= (
        (centre - side.location).normalized() * 0.15 * median_depth
    )  # back off a little to see the objects whole
    scene.camera = side
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light, scene.display.shading.color_type = "FLAT", "TEXTURE"
    scene.world = scene.world or bpy.data.worlds.new("backdrop")
    scene.world.color = (0.9, 0.9, 0.9)
    scene.render.resolution_x, scene.render.resolution_y = 720, 480
    scene.render.filepath = str(output)
    bpy.ops.render.render(write_still=True)


def main() -> None:
    picture = SOURCE / "reference.png"
    image = read_video(picture)[0]
    height, width = image.shape[:2]
    with tempfile.TemporaryDirectory(prefix="das-figure-") as folder:
        work = Path(folder)
        depth, fov = true_depth(SOURCE / "camera_orbit.blend", width, height)
        np.save(work / "depth.npy", depth)
        proxy_args = [str(picture), "--depth", str(work / "depth.npy"), "--fov", f"{fov:.6f}", "--step", "2"]
        if das(["image-scene", *proxy_args, "-o", str(work / "scene.blend")]) != 0:
            raise SystemExit("das image-scene failed")
        side_view(work / "scene.blend", work / "side.png", float(np.nanmedian(depth)))
        if das(["camera-move", *proxy_args, "--motion", MOTION, "-o", str(work / "tracks.npz")]) != 0:
            raise SystemExit("das camera-move failed")
        moved = render_tracking(Tracks.load(work / "tracks.npz"), "mesh", 2)[-1]  # first and last frame
        figure = image_grid(
            [
                [
                    (image, "the picture (camera_orbit, frame 1)"),
                    (read_video(work / "side.png")[0], "its 3D proxy, seen from the side"),
                    (moved, f"tracking, last frame of '{MOTION}'"),
                ]
            ],
            thumb_width=PANEL[0],
            thumb_height=PANEL[1],
        )
    OUTPUT.parent.mkdir(exist_ok=True)
    Image.fromarray(figure).save(OUTPUT, optimize=True)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
