"""Runs inside Blender (never imported): render one training sample for `das dataset synth`.

Started as `python synth_in_blender.py -- ARGS` (the bpy module) or `blender -b --python
synth_in_blender.py -- ARGS`; ARGS is one JSON object. The package root is appended to sys.path, not
prepended, so Blender's own numpy stays first; this file's folder is dropped so its neighbours cannot
shadow Blender's modules.
"""

import json
import os
import random
import sys

sys.path = [
    entry for entry in sys.path if os.path.realpath(entry or ".") != os.path.dirname(os.path.realpath(__file__))
]
args = json.loads(sys.argv[sys.argv.index("--") + 1])
sys.path.append(args["package_root"])

import bpy

from das_core.errors import DasError
from das_core.train.synth import ERROR_MARK, RESULT_MARK, TRACKS_MARK


def set_background(scene, rng: random.Random) -> str:
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    if args["background"] == "hdri":
        world.use_nodes = True
        nodes, links = world.node_tree.nodes, world.node_tree.links
        background = next((n for n in nodes if n.type == "BACKGROUND"), None) or nodes.new("ShaderNodeBackground")
        output = next((n for n in nodes if n.type == "OUTPUT_WORLD"), None) or nodes.new("ShaderNodeOutputWorld")
        texture = nodes.new("ShaderNodeTexEnvironment")
        texture.image = bpy.data.images.load(args["hdri"])
        links.new(texture.outputs["Color"], background.inputs["Color"])
        links.new(background.outputs["Background"], output.inputs["Surface"])
        return os.path.basename(args["hdri"])
    colour = [rng.random() ** 2.2 for _ in range(3)]  # uniform in sRGB, stored linear
    world.color = colour
    if world.node_tree is not None:
        for node in world.node_tree.nodes:
            if node.type == "BACKGROUND":
                node.inputs["Color"].default_value = (*colour, 1.0)
    if scene.render.engine == "BLENDER_WORKBENCH":
        scene.display.shading.background_type = "WORLD"
    return "colour " + " ".join(f"{c:.3f}" for c in colour)


def set_engine(render, engine: str) -> None:
    candidates = {
        "workbench": ["BLENDER_WORKBENCH"],
        "eevee": ["BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"],
        "cycles": ["CYCLES"],
    }
    problem = ""
    for candidate in candidates[engine]:
        try:
            render.engine = candidate
            return
        except TypeError as error:  # Blender names the engines it has
            problem = str(error)
    raise DasError(f"render engine {engine} is not available in this Blender: {problem}")


def scene_text(scene) -> str | None:
    candidates = [scene.get("das_prompt"), scene.get("prompt")]
    settings = scene.get("das")  # the add-on's panel settings, stored in the file even when it is not loaded
    if settings is not None and hasattr(settings, "get"):
        candidates.append(settings.get("prompt"))
    for name in ("das_prompt", "prompt"):
        text = bpy.data.texts.get(name)
        candidates.append(text.as_string() if text is not None else None)
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def run() -> None:
    bpy.ops.wm.open_mainfile(filepath=args["blend"])
    from blender_addon.export import export_tracks

    scene = bpy.context.scene
    render = scene.render
    set_engine(render, args["engine"])
    render.resolution_x, render.resolution_y, render.resolution_percentage = args["width"], args["height"], 100
    render.film_transparent = False
    render.use_file_extension = False
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    if render.engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = args["render_samples"]
    elif render.engine.startswith("BLENDER_EEVEE"):
        scene.eevee.taa_render_samples = args["render_samples"]
    rng = random.Random(args["seed"])
    background = set_background(scene, rng)
    tracks = export_tracks(scene, samples=args["num_frames"])
    tracks.save(args["tracks"])
    print(TRACKS_MARK, flush=True)  # the caller renders the tracking video while Blender renders frames
    for index, frame in enumerate(tracks.frame_numbers):
        scene.frame_set(int(frame))
        render.filepath = os.path.join(args["frames_dir"], f"frame_{index:05d}.png")
        bpy.ops.render.render(write_still=True)
    result = {"prompt": scene_text(scene), "background": background, "frames": [int(f) for f in tracks.frame_numbers]}
    print(RESULT_MARK + json.dumps(result))


try:
    run()
except DasError as error:
    print(ERROR_MARK + str(error), file=sys.stderr)
    sys.exit(3)
