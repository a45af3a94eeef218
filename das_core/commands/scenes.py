"""`das export` (headless .blend export), `das batch` (many shots from a spec) and `das demo`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_BACKENDS = ("preview", "tiny", "das")
_ENGINES = ("WORKBENCH", "EEVEE", "CYCLES")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export`, `batch` and `demo` to the `das` command."""
    export = subparsers.add_parser(
        "export",
        help="export a .blend file's animation to a tracks file (.npz), headless",
        description="Export the active scene of a .blend file to das-tracks/1 with the add-on's exporter, "
        "in a Blender process of its own: this Python's bpy module, or the Blender executable given "
        "with --blender (for when bpy does not match this Python).",
    )
    export.add_argument("blend", type=Path, help="the .blend file")
    export.add_argument("-o", "--output", type=Path, required=True, help="tracks file to write (.npz)")
    export.add_argument("--camera", default=None, help="camera object name (default: the scene camera)")
    export.add_argument(
        "--frames", default=None, metavar="START:END", help="frame range, inclusive (default: the scene's)"
    )
    export.add_argument("--samples", type=int, default=49, help="frames to sample from the range (default: 49)")
    export.add_argument("--blender", default=None, metavar="PATH", help="Blender executable to run instead of bpy")
    export.add_argument(
        "--reference-render", type=Path, default=None, metavar="IMG", help="also render the first sampled frame to IMG (PNG)"
    )
    export.add_argument(
        "--engine",
        default=None,
        type=str.upper,
        choices=_ENGINES,
        help="render engine for --reference-render (default: the scene's)",
    )
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from das_core.blend_export import export_blend, parse_frame_range

    frame_start, frame_end = parse_frame_range(args.frames) if args.frames else (None, None)
    result = export_blend(
        args.blend,
        args.output,
        camera=args.camera,
        frame_start=frame_start,
        frame_end=frame_end,
        samples=args.samples,
        blender=args.blender,
        reference_render=args.reference_render,
        engine=args.engine,
    )
    for warning in result.warnings:
        print(f"das export: warning: {warning}", file=sys.stderr)
    tracks = result.tracks
    frames = tracks.frame_numbers
    print(
        f"wrote {result.tracks_path}: {tracks.num_points} points x {tracks.num_frames} frames "
        f"(scene frames {frames[0]}..{frames[-1]}), {tracks.width}x{tracks.height}"
    )
    if result.reference_path:
        print(f"wrote {result.reference_path}: frame {frames[0]}")
    return 0
