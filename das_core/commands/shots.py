"""`das interpolate`: a model-rate video and its tracks to the scene-rate video (every timeline frame)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `interpolate` to `das`."""
    parser = subparsers.add_parser(
        "interpolate",
        help="make a model-rate video whole: every frame of the tracks, at the scene's frame rate",
        description="The video's frames are the model frames, evenly spaced over the tracks' frames "
        "(first and last included, as the tracking video samples them); the tracks hold every frame "
        "of the shot. Each missing frame is made from the generated frames around it by the scene's "
        "exact motion: every pixel's surface point is found in them, sampled where it is not hidden "
        "and blended by time; empty background follows the camera.",
    )
    parser.add_argument("video", type=Path, metavar="VIDEO", help="the model's video (MP4, or a folder of frames)")
    parser.add_argument(
        "tracks", type=Path, metavar="TRACKS.npz", help="tracks of every frame of the shot (das-tracks/1, with faces)"
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.mp4", help="MP4 to write")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the MP4 (default: the tracks' own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=interpolate_command)


def interpolate_command(args: argparse.Namespace) -> int:
    """Read, in-between every timeline frame, write; print one summary line."""
    import numpy as np
    from tqdm import tqdm

    from das_core.errors import DasError
    from das_core.tracking.inbetween import Inbetweener
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video, sample_indices, write_mp4

    tracks = Tracks.load(args.tracks)
    video = read_video(args.video, progress=not args.quiet)
    if len(video) > tracks.num_frames:
        raise DasError(
            f"{args.video} has {len(video)} frames but {args.tracks} only {tracks.num_frames}: the tracks must "
            "hold every frame of the shot (export them with a frame step of 1)"
        )
    keys = sample_indices(tracks.num_frames, len(video))
    inbetweener = Inbetweener(tracks, {int(k): frame for k, frame in zip(keys, video)})
    start = time.perf_counter()
    frames = np.stack(
        [
            inbetweener.frame(t)
            for t in tqdm(range(tracks.num_frames), desc="in-betweening", unit="frame", disable=args.quiet)
        ]
    )
    seconds = time.perf_counter() - start
    fps = tracks.fps if args.fps is None else args.fps
    write_mp4(args.output, frames, fps=fps, progress=not args.quiet)
    height, width = frames.shape[1:3]
    print(
        f"wrote {args.output}: {len(frames)} frames {width}x{height} at {fps:g} fps from {len(video)} model "
        f"frames ({len(frames) - len(video)} made) in {seconds:.2f} s"
    )
    return 0
