"""`das infer --tracks`: a whole shot on a local model (DaS or Wan-Move), window after window.

The shot is planned at the model's frame rate (`das_core.workflow.whole_shot`) and sent to the model
as a server would get it: one `JobRequest` whose control holds every window's, each made from its own
first frame. The windows run in order (`JobRequest.window`, as a server runs them), each starting at
the last frame the one before made (the key they share); a window shorter than the model's frames runs with its last control frame held to that
length, and its frames past the window are dropped. The video is written as `das generate --tracks`
writes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np

from das_core.errors import DasError
from das_core.tracking.shot import FRAMES_EVERY
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import ModelWindow
from das_core.wire.protocol import JobRequest

# Makes one window's frames, uint8 [L, H, W, 3] for a request of L control frames.
WindowRunner = Callable[[JobRequest], np.ndarray]


def shot_tracks(args: argparse.Namespace) -> Tracks:
    """--tracks loaded and checked for --frames, before any model is loaded."""
    from das_core.workflow.whole_shot import check_tracks

    tracks = Tracks.load(args.tracks)
    check_tracks(tracks, args.frames or FRAMES_EVERY, str(args.tracks))
    return tracks


def refuse_frames_without_tracks(args: argparse.Namespace) -> None:
    if args.frames is not None and args.tracks is None:
        raise DasError(
            "--frames applies to --tracks, which hold every frame of a shot; --tracking_path and --point_tracks "
            "are run as one window of the model's frames and written as they are"
        )


def run_shot(
    args: argparse.Namespace, tracks: Tracks, first: np.ndarray, window: ModelWindow, run: WindowRunner
) -> int:
    """Plan the shot at `window` (the output size, --num_frames, the model's fps and control), run each window
    with `run` from `first` (the image, any size), write the MP4; print one summary line."""
    from das_core.tracking.video import fit_frames
    from das_core.workflow.whole_shot import WholeShot

    shot = WholeShot.planned(tracks, str(args.tracks), window, args.frames or FRAMES_EVERY)
    print(f"{args.tracks}: {shot.describe()}", file=sys.stderr)
    request = JobRequest(
        prompt=args.prompt, image=fit_frames(first, *window.size, resample="bilinear"),
        negative_prompt=args.negative_prompt, seed=args.seed, steps=args.num_inference_steps,
        guidance=args.guidance_scale, fps=window.fps, **shot.control(progress=True).job_fields(),
    )  # fmt: skip
    parts: list[np.ndarray] = []
    image = request.image
    for index, keys in enumerate(shot.plan.windows):
        if len(shot.plan.windows) > 1:
            print(f"window {index + 1} of {len(shot.plan.windows)}: model frames {keys[0]}..{keys[1]}", file=sys.stderr)
        frames = run(request.window(index, image))
        parts.append(frames if index == 0 else frames[1:])  # the shared key is the previous window's frame
        image = frames[-1]
    video = shot.write(args.output_path, np.concatenate(parts), fps=args.fps, progress=True)
    print(f"{video.summary()}, {window.width} x {window.height}")
    return 0
