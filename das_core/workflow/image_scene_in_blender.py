"""Runs inside Blender (never imported): build a scene from one picture and save it, for `image_blend`.

Started as `python image_scene_in_blender.py -- ARGS` (the bpy module) or `blender -b
--factory-startup --python image_scene_in_blender.py -- ARGS`; ARGS is one JSON object. sys.path is
handled as in export_in_blender.py. The add-on is registered (not enabled as an extension) so
`scene.das` can hold the reference image.
"""

import json
import os
import sys

sys.path = [
    entry for entry in sys.path if os.path.realpath(entry or ".") != os.path.dirname(os.path.realpath(__file__))
]
args = json.loads(sys.argv[sys.argv.index("--") + 1])
sys.path.append(args["package_root"])

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.workflow.blend_export import ERROR_MARK


def run() -> None:
    import blender_addon
    from blender_addon.image_scene import build_image_scene, keyframe_camera
    from das_core.tracking.camera_motion import camera_path
    from das_core.tracking.proxy import build_proxy

    path = camera_path(args["motion"], args["frames"]) if args["motion"] else None  # bad strings fail first
    depth = np.load(args["depth"])
    proxy = build_proxy(
        depth, np.array(args["intrinsics"]), metric=args["metric"], step=args["step"], edge=args["edge"]
    )
    bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)
    blender_addon.register()
    scene = bpy.context.scene
    scene.name = os.path.splitext(os.path.basename(args["image"]))[0] or "image"
    build_image_scene(scene, args["image"], proxy, split=args["split"])
    scene.frame_end = scene.frame_start + args["frames"] - 1
    if path is not None:
        keyframe_camera(scene, scene.camera, path)
    bpy.ops.wm.save_as_mainfile(filepath=args["output"])


try:
    run()
except DasError as error:
    print(ERROR_MARK + str(error).replace("\n", " "), file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)
