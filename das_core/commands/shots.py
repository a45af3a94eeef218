"""`das interpolate`: a model-rate video and its tracks to the scene-rate video (every timeline frame)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `interpolate` to `das`."""
    parser = subparsers.add_parser(
        "interpolate",
        help="make a model-rate video whole: every frame of the tracks, at the scene's frame rate",
        description="The video's frames are the model's frames of the shot the tracks hold (every frame of it): "
        "timeline frames at the model's frame rate, as `das generate --tracks` plans them and `das fetch` "
        "writes them. Each frame between them is made from the generated frames around it by the scene's "
        "exact motion: every pixel's surface point is found in them, sampled where it is not hidden and "
        "blended by time; empty background follows the camera. (`das generate --tracks` and `das fetch "
        "--tracks` do this themselves.)",
    )
    parser.add_argument("video", type=Path, metavar="VIDEO", help="the model's video (MP4, or a folder of frames)")
    parser.add_argument(
        "tracks", type=Path, metavar="TRACKS.npz", help="tracks of every frame of the shot (das-tracks/1, with faces)"
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.mp4", help="MP4 to write")
    parser.add_argument(
        "--model-fps",
        type=float,
        default=None,
        help="the model's frame rate (DaS 8, Wan-Move 16) (default: the video's; needed for a folder of frames)",
    )
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the MP4 (default: the tracks' own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=interpolate_command)


def interpolate_command(args: argparse.Namespace) -> int:
    """Read, plan the keys at the model's frame rate, in-between every timeline frame, write; print one line."""
    from das_core.errors import DasError
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video, video_info
    from das_core.tracking.window import ModelWindow
    from das_core.workflow.whole_shot import FRAMES_EVERY, WholeShot

    tracks = Tracks.load(args.tracks)
    model_fps = args.model_fps
    if model_fps is None:
        if not args.video.is_file():
            raise DasError(f"{args.video} is a folder of frames, which has no frame rate: give the model's with "
                           "--model-fps (DaS 8, Wan-Move 16)")  # fmt: skip
        model_fps = video_info(args.video).fps
    video = read_video(args.video, progress=not args.quiet)
    height, width = video.shape[1:3]
    # Only the keys matter here: a window long enough for the whole shot.
    window = ModelWindow(width, height, max(2, tracks.num_frames), model_fps)
    shot = WholeShot.planned(tracks, str(args.tracks), window, FRAMES_EVERY, model_option=None)
    shot.check_model_frames(
        len(video), f"give the model's video of these tracks, or its frame rate with --model-fps (read: {model_fps:g})"
    )
    written = shot.write(args.output, video, fps=args.fps, progress=not args.quiet)
    print(
        f"wrote {args.output}: {written.frames} frames {width}x{height} at {written.fps:g} fps from {len(video)} "
        f"model frames at {model_fps:g} fps ({written.made} made) in {written.seconds:.2f} s"
    )
    return 0
