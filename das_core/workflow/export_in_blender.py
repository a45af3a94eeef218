"""Runs inside Blender (never imported): export a .blend's scene to das-tracks/1 for `blend_export`.

Started as `python export_in_blender.py -- ARGS` (the bpy module) or `blender -b FILE --python
export_in_blender.py -- ARGS`; ARGS is one JSON object. The package root is appended to sys.path, not
prepended, so Blender's own numpy stays first; this file's folder is dropped so its neighbours cannot
shadow Blender's modules.
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

from das_core.errors import DasError
from das_core.workflow.blend_export import ERROR_MARK, WARNING_MARK


def run() -> None:
    if os.path.realpath(bpy.data.filepath or "") != os.path.realpath(args["blend"]):
        bpy.ops.wm.open_mainfile(filepath=args["blend"])
    from blender_addon.export import export_tracks

    scene = bpy.context.scene
    camera = None
    if args["camera"]:
        camera = bpy.data.objects.get(args["camera"])
        if camera is None:
            cameras = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA") or ["none"]
            raise DasError(f"no object named {args['camera']!r}; cameras in this file: {', '.join(cameras)}")
    # Every frame of the range: shots are planned from every timeline frame (das_core.tracking.shot).
    tracks = export_tracks(scene, camera=camera, frame_start=args["frame_start"], frame_end=args["frame_end"], step=1)
    tracks.save(args["output"])
    for warning in tracks.extra.get("warnings", []):
        print(WARNING_MARK + warning, file=sys.stderr)
    if args["reference_render"]:
        from blender_addon.reference_render import render_reference

        render_reference(
            scene, args["reference_render"], frame=int(tracks.frame_numbers[0]), engine=args["engine"], camera=camera
        )


try:
    run()
except DasError as error:
    print(ERROR_MARK + str(error).replace("\n", " "), file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)
