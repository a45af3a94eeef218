"""`das camera-move` (one picture, its depth and a camera-motion string to tracks) and `das image-scene` (to a .blend)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from das_core.errors import DasError
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

    scene = subparsers.add_parser(
        "image-scene",
        help="a .blend scene from one picture: its depth as textured objects and a camera (headless)",
        description="Build what Blender's New scene from image builds, in a Blender process of its own: "
        "the picture's 3D proxy from its depth (a --depth file, or the server's depth model, asked "
        "before Blender starts), split into objects at depth edges, a camera that sees the picture "
        "at frame 0, and the picture as the reference image. Then `das export` or Blender.",
    )
    scene.add_argument("image", type=Path, metavar="IMAGE", help="the picture (PNG/JPG)")
    scene.add_argument("-o", "--output", required=True, type=Path, metavar="SCENE.blend", help=".blend file to write")
    add_proxy_arguments(scene)
    scene.add_argument("--frames", type=int, default=DAS_WINDOW.frames, help="scene frames (default: %(default)s)")
    scene.add_argument("--motion", default=None, help="also key the camera along a DaS camera-motion string")
    scene.add_argument("--no-split", action="store_true", help="one object, not one per depth part")
    scene.add_argument("--blender", default=None, metavar="PATH", help="Blender executable to run instead of bpy")
    _server_arguments(scene)
    scene.set_defaults(func=image_scene_command)


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
    from das_core.tracking.proxy import build_proxy

    image, depth, metric, intrinsics = image_depth(args)
    return image, build_proxy(depth, intrinsics, metric=metric, step=args.step, edge=args.edge)


def image_depth(args: argparse.Namespace):
    """(picture uint8 [H, W, 3], depth [H, W], metric, intrinsics [3, 3]) with depth from --depth or the server."""
    from das_core.tracking.proxy import DEFAULT_FOV_DEG, intrinsics_from_fov, read_depth
    from das_core.tracking.video import IMAGE_SUFFIXES, read_video

    if args.image.suffix.lower() not in IMAGE_SUFFIXES or not args.image.is_file():
        raise DasError(f"{args.image}: no such picture; give a {', '.join(IMAGE_SUFFIXES)} file")
    image = read_video(args.image)[0]
    height, width = image.shape[:2]
    fov = args.fov
    if args.depth is not None:
        depth, metric = read_depth(args.depth, width, height), not args.relative
    else:
        from das_core.commands.server import _client

        try:
            with _client(args) as client:
                client.info()  # an unreachable server fails within --timeout, not the depth request's
                result = client.depth(image, timeout=max(args.timeout, 120.0))
        except DasError as error:
            raise DasError(
                f"no depth for {args.image.name}: {error}; or give a depth map with --depth DEPTH.npy"
            ) from None
        depth, metric = result.depth, result.metric
        fov = fov if fov is not None else result.fov_deg
        print(f"depth from {result.model} ({'metric' if metric else 'relative'})")
    return image, depth, metric, intrinsics_from_fov(width, height, DEFAULT_FOV_DEG if fov is None else fov)


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


def image_scene_command(args: argparse.Namespace) -> int:
    from das_core.workflow.image_blend import build_image_blend

    if args.motion:
        from das_core.tracking.camera_motion import camera_path

        camera_path(args.motion, args.frames)  # a bad string fails before any depth work
    _, depth, metric, intrinsics = image_depth(args)
    print(f"building {args.output} with {args.blender or 'the bpy module'} (headless) ...", file=sys.stderr)
    output = build_image_blend(
        args.image, depth, args.output, intrinsics=intrinsics, metric=metric, step=args.step, edge=args.edge,
        split=not args.no_split, frames=args.frames, motion=args.motion, blender=args.blender,
    )  # fmt: skip
    height, width = depth.shape
    print(f"wrote {output}: {width}x{height} picture as a 3D proxy, camera, frames 0..{args.frames - 1}")
    return 0
