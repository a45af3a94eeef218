"""`das render-tracking` and `das render-tracks`: a tracks file (das-tracks/1 .npz) to a model's control.

render-tracking draws the DaS tracking video (MP4, PNGs); render-tracks writes 2D point tracks
with visibility, as a track-driven model (Wan-Move) reads them, and an overlay video to check them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `render-tracking` and `render-tracks` to `das`."""
    _register_render_tracking(subparsers)
    _register_render_tracks(subparsers)


def _register_render_tracking(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render-tracking",
        help="render a tracks file (.npz) as a DaS tracking video",
        description="Render the tracking video DaS is conditioned on: every tracked point keeps the "
        "colour of where it was at the first frame (red = x, green = y, blue = nearness) and is "
        "drawn where it is in each frame, on black. The video has the tracks' own size; --fit "
        f"draws it letterboxed at the model's {DAS_WINDOW.width}x{DAS_WINDOW.height}, colours then naming positions "
        "in that frame.",
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
        "--frames",
        type=int,
        default=DAS_WINDOW.frames,
        help="frames to sample, evenly spaced (default: %(default)s, what DaS takes)",
    )
    parser.add_argument(
        "--fps", type=float, default=DAS_WINDOW.fps, help="frame rate of the MP4 (default: %(default)g, as DaS)"
    )
    parser.add_argument("--png-dir", type=Path, default=None, metavar="DIR", help="also write lossless PNG frames here")
    parser.add_argument(
        "--fit",
        action="store_true",
        help=f"render at {DAS_WINDOW.width}x{DAS_WINDOW.height}, the size the DaS model needs, letterboxed: the "
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
        fit=DAS_WINDOW.size if args.fit else None,
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


def _register_render_tracks(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render-tracks",
        help="point tracks with visibility from a tracks file (.npz), for Wan-Move",
        description="Sample points on a grid over the surfaces seen in the first frame, follow each "
        "with its triangle through every frame and mark it hidden where it is behind the camera, "
        "out of frame or behind another surface. Writes DIR/tracks.npy and DIR/visibility.npy as "
        "Wan-Move's generate.py --track / --track_visibility read them (pixels of the output size; "
        "an aspect other than the camera's is letterboxed), and DIR/overlay.mp4 showing them. With "
        "--image, also DIR/image.png: that image letterboxed to the output size, the one to give "
        "Wan-Move with these tracks.",
    )
    parser.add_argument("tracks", type=Path, metavar="TRACKS.npz", help="tracks file (das-tracks/1, with faces)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder to write into")
    parser.add_argument("--for", dest="target", required=True, choices=("wan-move",), help="the model to feed")
    parser.add_argument(
        "--frames",
        type=int,
        default=WAN_MOVE_WINDOW.frames,
        help="frames to sample, evenly spaced (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        default=f"{WAN_MOVE_WINDOW.width}x{WAN_MOVE_WINDOW.height}",
        metavar="WxH",
        help="output size in pixels (default: %(default)s)",
    )
    parser.add_argument("--spacing", type=int, default=16, help="grid spacing in output pixels (default: 16)")
    parser.add_argument(
        "--objects",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only points on these objects (names as exported; the others still hide them) (default: all)",
    )
    parser.add_argument(
        "--image", type=Path, default=None, metavar="IMAGE", help="reference image to draw the overlay on"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=render_tracks_command)


def render_tracks_command(args: argparse.Namespace) -> int:
    """Check, track, write the arrays, the overlay (and the fitted image); print one summary line."""
    import numpy as np
    from PIL import Image

    from das_core.errors import DasError
    from das_core.tracking.point_tracks import draw_point_tracks, point_tracks, wan_move_arrays
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import fit_frames, letterbox_rect, read_video, write_mp4

    width, height = _parse_size(args.size)
    if args.frames < 1 or (args.frames - 1) % 4:
        raise DasError(
            f"--frames {args.frames}: Wan-Move needs 4n+1 frames (its VAE packs 4 frames per latent); use 81"
        )
    tracks = Tracks.load(args.tracks)
    image = None
    if args.image is not None:
        image = fit_frames(read_video(args.image)[0], width, height, resample="bilinear")
    start = time.perf_counter()
    points = point_tracks(
        tracks, args.frames, (width, height), args.spacing, objects=args.objects, progress=not args.quiet
    )
    seconds = time.perf_counter() - start

    args.output.mkdir(parents=True, exist_ok=True)
    track_array, visibility_array = wan_move_arrays(points)
    np.save(args.output / "tracks.npy", track_array)
    np.save(args.output / "visibility.npy", visibility_array)
    if image is not None:
        Image.fromarray(image).save(args.output / "image.png")
    overlay = draw_point_tracks(points, image)
    write_mp4(args.output / "overlay.mp4", overlay, fps=WAN_MOVE_WINDOW.fps, progress=not args.quiet)

    content = letterbox_rect(tracks.width, tracks.height, width, height)[2:]
    fitted = f", letterboxed from {tracks.width}x{tracks.height}" if content != (width, height) else ""
    print(
        f"wrote {args.output}/: {points.num_points:,} points over {points.num_frames} frames "
        f"{width}x{height}{fitted} from {tracks.num_frames} source frames, "
        f"{points.visible.mean():.0%} visible, tracked in {seconds:.2f} s"
    )
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    """'832x480' to (832, 480); anything else is a DasError naming the expected form."""
    from das_core.errors import DasError

    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise DasError(f"--size {text!r}: expected WIDTHxHEIGHT in whole pixels, both positive, e.g. 832x480")
    return int(parts[0]), int(parts[1])
