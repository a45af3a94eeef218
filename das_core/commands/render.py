"""`das render-tracking`: a tracks file (das-tracks/1 .npz) to the DaS tracking video (MP4, PNGs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

_MODEL_WIDTH, _MODEL_HEIGHT = 720, 480


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `render-tracking` to `das`."""
    parser = subparsers.add_parser(
        "render-tracking",
        help="render a tracks file (.npz) as a DaS tracking video",
        description="Render the tracking video DaS is conditioned on: every tracked point keeps the "
        "colour of where it was at the first frame (red = x, green = y, blue = nearness) and is "
        "drawn where it is in each frame, on black. The video has the tracks' own size; --fit "
        "draws it letterboxed at the model's 720x480, colours then naming positions in that frame.",
    )
    parser.add_argument("tracks", type=Path, metavar="TRACKS.npz", help="tracks file (das-tracks/1)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.mp4", help="MP4 to write")
    parser.add_argument(
        "--mode",
        choices=("mesh", "points"),
        default=None,
        help="mesh: draw the surfaces (needs faces); points: a rectangle per point "
        "(default: mesh when the file has faces, else points)",
    )
    parser.add_argument(
        "--point-style",
        choices=("spatialtracker", "cotracker"),
        default="spatialtracker",
        help="look of points mode, after the reference's two trackers (default: spatialtracker)",
    )
    parser.add_argument(
        "--encoding",
        choices=("exact", "reference"),
        default="exact",
        help="mesh mode's colours: exact gives each pixel the first-frame position of its own surface "
        "point; reference interpolates per-vertex colours across each face, as the DaS reference's "
        "Blender script renders them (large faces reaching out of frame get dark and bright wedges) "
        "(default: exact)",
    )
    parser.add_argument(
        "--frames", type=int, default=49, help="frames to sample, evenly spaced (default: 49, what DaS takes)"
    )
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the MP4 (default: 8, as DaS)")
    parser.add_argument("--png-dir", type=Path, default=None, metavar="DIR", help="also write lossless PNG frames here")
    parser.add_argument(
        "--fit",
        action="store_true",
        help=f"render at {_MODEL_WIDTH}x{_MODEL_HEIGHT}, the size the DaS model needs, letterboxed: the "
        "camera's image scaled to fit and centred, black bars, never stretched or cropped (the "
        "reference image's framing too); colours are positions in the letterboxed frame",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=render_tracking_command)


def render_tracking_command(args: argparse.Namespace) -> int:
    """Load, render, (fit,) write; print one summary line."""
    from das_core.tracking.render import render_tracking
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import write_mp4, write_png_dir

    tracks = Tracks.load(args.tracks)
    mode = args.mode or ("mesh" if tracks.faces is not None and len(tracks.faces) else "points")
    start = time.perf_counter()
    frames = render_tracking(
        tracks,
        mode=mode,
        num_frames=args.frames,
        fit=(_MODEL_WIDTH, _MODEL_HEIGHT) if args.fit else None,
        point_style=args.point_style,
        encoding=args.encoding,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    write_mp4(args.output, frames, fps=args.fps, progress=not args.quiet)
    if args.png_dir is not None:
        write_png_dir(args.png_dir, frames)

    what = (
        f"{tracks.num_points:,} vertices, {len(tracks.faces):,} triangles, {args.encoding} encoding"
        if mode == "mesh"
        else (f"{tracks.num_points:,} points, {args.point_style} style")
    )
    height, width = frames.shape[1:3]
    fitted = (
        f" (letterboxed from {tracks.width}x{tracks.height})"
        if args.fit and (width, height) != (tracks.width, tracks.height)
        else ""
    )
    pngs = f" and {args.png_dir}/" if args.png_dir is not None else ""
    print(
        f"wrote {args.output}{pngs}: {len(frames)} frames {width}x{height}{fitted} from "
        f"{tracks.num_frames} source frames, {mode} mode ({what}), rendered in {seconds:.2f} s"
    )
    return 0
