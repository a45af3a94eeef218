"""Rebuild every committed example from its scene script: .blend, tracks, reference render, contact sheet.

Run from anywhere: `python examples/build_examples.py [--blender PATH]`. For each scene in
`examples/scenes/` it writes `examples/NAME/`:

- `NAME.blend`          the scene, built by `scenes/NAME.py`
- `tracks.npz`          `das export` of frames 1..49 (every frame, 24 fps)
- `reference.png`       the first frame rendered with Workbench at 720x480
- `contact_sheet.png`   8 frames of the tracking video: what `das render-tracking` should give you
- `prompt.txt`          the prompt the demo and the example batch spec use

and `examples/images/tracking_vs_render.png` (the README picture): the walk's first frame,
rendered and as a tracking video frame, side by side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from PIL import Image

from das_core.tracking.contact_sheet import contact_sheet, image_grid
from das_core.tracking.render import render_tracking
from das_core.tracking.video import read_video
from das_core.tracking.window import DAS_WINDOW
from das_core.workflow.blend_export import export_blend

EXAMPLES = Path(__file__).resolve().parent
PROMPTS = {
    "walk_cycle": "A wooden artist's mannequin walks across a grey studio floor, soft light, smooth motion.",
    "camera_orbit": "The camera circles slowly around a wooden crate, a blue ball, a golden cone, a red ring "
    "and a stone pillar standing on a concrete floor.",
    "thrown_ball": "A red rubber ball is thrown across a warehouse floor, bounces twice and rolls past "
    "two cardboard boxes.",
}


def build(name: str, blender: str | None) -> None:
    """Build one example's files in examples/NAME/."""
    folder = EXAMPLES / name
    folder.mkdir(exist_ok=True)
    blend = folder / f"{name}.blend"
    script = EXAMPLES / "scenes" / f"{name}.py"
    if blender:
        command = [blender, "-b", "--factory-startup", "--python", str(script), "--", str(blend)]
    else:
        command = [sys.executable, str(script), str(blend)]
    subprocess.run(command, check=True, capture_output=True)
    reference = folder / "reference.png"
    result = export_blend(blend, folder / "tracks.npz", blender=blender, reference_render=reference, engine="WORKBENCH")
    _optimise_png(reference)
    tracking = render_tracking(result.tracks, "mesh", DAS_WINDOW.frames, progress=True)
    Image.fromarray(contact_sheet(tracking, thumb_width=200)).save(folder / "contact_sheet.png", optimize=True)
    (folder / "prompt.txt").write_text(PROMPTS[name] + "\n", encoding="utf-8")
    if name == "walk_cycle":
        picture = image_grid(
            [
                [
                    (read_video(reference)[0], "Blender render (Workbench), frame 1"),
                    (tracking[0], "tracking video, frame 1"),
                ]
            ],
            thumb_width=360,
            thumb_height=240,
        )
        (EXAMPLES / "images").mkdir(exist_ok=True)
        Image.fromarray(picture).save(EXAMPLES / "images" / "tracking_vs_render.png", optimize=True)
    print(f"{name}: {result.tracks.num_points} points x {result.tracks.num_frames} frames -> {folder}")


def _optimise_png(path: Path) -> None:
    """Re-save a PNG with maximum lossless compression (same pixels, smaller file)."""
    with Image.open(path) as image:
        image.load()
    image.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blender", default=None, help="Blender executable (default: this Python's bpy module)")
    parser.add_argument("names", nargs="*", default=list(PROMPTS), help="examples to build (default: all)")
    args = parser.parse_args()
    for name in args.names:
        build(name, args.blender)


if __name__ == "__main__":
    main()
