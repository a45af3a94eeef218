"""`das camera-move`: one picture, its depth and a DaS camera-motion string to a tracks file."""

from __future__ import annotations

import argparse
from pathlib import Path

from das_core.tracking.window import DAS_WINDOW


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `camera-move` to `das`."""
    from das_core.commands.server import _server_arguments

    parser = subparsers.add_parser(
        "camera-move",
        help="a tracks file of a camera moving through one picture (its depth as a mesh)",
        description="Build the picture's 3D proxy from its depth (a --depth file, or the server's depth "
        "model) and move the camera along a DaS camera-motion string: 'trans DX DY DZ [F0 F1]; "
        "rot x|y|z DEG [F0 F1]; spiral R [F0 F1]'. Positive trans moves the camera left, up and "
        "back (zoom out); rot turns the scene about the camera's axis. Then `das render-tracking` "
        "and `das generate --image IMAGE` finish the job.",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the picture (PNG/JPG)")
    parser.add_argument("--motion", required=True, help="DaS camera-motion string, e.g. 'trans 0 0 -0.3; rot y 5'")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="TRACKS.npz", help="tracks file to write")
    add_proxy_arguments(parser)
    parser.add_argument("--frames", type=int, default=DAS_WINDOW.frames, help="frames (default: %(default)s)")
    _server_arguments(parser)
    parser.set_defaults(func=camera_move_command)


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--depth", type=Path, default=None, metavar="DEPTH.npy",
        help="depth map saved with numpy.save ([H, W] z distances; default: ask the server's depth model)",
    )  # fmt: skip
    parser.add_argument(
        "--relative", action="store_true", help="the --depth file is up to scale (scaled to a median of 1 unit)"
    )
    parser.add_argument("--fov", type=float, default=None, help="horizontal field of view in degrees (default: 60)")
    parser.add_argument("--step", type=int, default=4, help="pixels per mesh cell side (default: 4)")
    parser.add_argument(
        "--edge", type=float, default=0.08, help="depth jump that separates neighbouring cells (default: 0.08)"
    )


def image_proxy(args: argparse.Namespace):
    """The picture (uint8 [H, W, 3]) and its proxy, with depth from --depth or the server."""
    from das_core.tracking.proxy import DEFAULT_FOV_DEG, build_proxy, intrinsics_from_fov, read_depth
    from das_core.tracking.video import read_video

    image = read_video(args.image)[0]
    height, width = image.shape[:2]
    fov = args.fov
    if args.depth is not None:
        depth, metric = read_depth(args.depth, width, height), not args.relative
    else:
        from das_core.commands.server import _client

        with _client(args) as client:
            result = client.depth(image, timeout=max(args.timeout, 120.0))
        depth, metric = result.depth, result.metric
        fov = fov if fov is not None else result.fov_deg
        print(f"depth from {result.model} ({'metric' if metric else 'relative'})")
    camera = intrinsics_from_fov(width, height, DEFAULT_FOV_DEG if fov is None else fov)
    return image, build_proxy(depth, camera, metric=metric, step=args.step, edge=args.edge)


def camera_move_command(args: argparse.Namespace) -> int:
    from das_core.tracking.camera_motion import camera_path

    path = camera_path(args.motion, args.frames)  # a bad string fails before any depth work
    _, proxy = image_proxy(args)
    tracks = proxy.tracks(path, fps=DAS_WINDOW.fps)
    tracks.extra["camera_motion"] = args.motion
    tracks.extra["image"] = str(args.image)
    tracks.save(args.output)
    print(
        f"wrote {args.output}: {tracks.num_frames} frames {proxy.width}x{proxy.height}, "
        f"{tracks.num_points:,} vertices in {proxy.num_parts} parts, camera '{args.motion}'"
    )
    return 0
