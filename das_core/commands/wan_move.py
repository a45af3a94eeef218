"""`das infer --model wan-move`: the Wan-Move pipeline run locally on a whole shot (a tracks file) or on
`das render-tracks`' .npy files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from das_core.errors import DasError


def run_wan_move_infer(args: argparse.Namespace) -> int:
    """Image and point tracks (or the shot's tracks) first (cheap, fails fast), then the model; writes the MP4."""
    import torch

    from das_core.commands.infer_shot import run_shot, shot_tracks
    from das_core.model.wan_move.loading import DEFAULT_MODEL, load_wan_move_pipeline
    from das_core.tracking import video
    from das_core.tracking.window import WAN_MOVE_WINDOW, ModelWindow
    from das_core.wire.protocol import JobRequest

    if (args.tracks is None) == (args.point_tracks is None):
        raise DasError("das infer --model wan-move needs --tracks TRACKS.npz or --point_tracks DIR (one of them)")
    tracks = shot_tracks(args) if args.tracks is not None else None
    first = video.read_video(args.image_or_video_path)[0]
    points = _point_tracks(args, first) if tracks is None else None
    pipe = load_wan_move_pipeline(
        args.model_path or DEFAULT_MODEL,
        **({"base_model": args.base_model} if args.base_model else {}),
        device=args.device,
        dtype=getattr(torch, args.dtype),
        offload=args.offload,
    )
    pipe.set_progress_bar_config(desc="das infer wan-move", unit="step")
    if tracks is not None:
        window = ModelWindow(args.width, args.height, args.num_frames, WAN_MOVE_WINDOW.fps, WAN_MOVE_WINDOW.control)
        return run_shot(args, tracks, first, window, lambda request: _wan_move_frames(pipe, args, request))
    assert points is not None
    image = video.fit_frames(first, args.width, args.height, resample="bilinear")
    request = JobRequest(prompt=args.prompt, image=image, point_tracks=points[0], visibility=points[1])
    frames = _wan_move_frames(pipe, args, request)
    path = video.write_mp4(args.output_path, frames, fps=args.fps)
    print(f"wrote {path} ({len(frames)} frames, {args.width} x {args.height}, {args.fps:g} fps, Wan-Move)")
    return 0


def _wan_move_frames(pipe, args: argparse.Namespace, request) -> np.ndarray:
    """The Wan-Move pipeline on one window (`request`: its image and point tracks at the output size), uint8, one
    frame per control frame (a shorter window is held to --num_frames, then cut back)."""
    import torch

    from das_core.tracking.video import model_frame_indices

    tracks, visibility = request.tracks_and_visibility()
    held = model_frame_indices(len(tracks), args.num_frames)
    generator = torch.Generator(device=pipe._execution_device).manual_seed(args.seed)
    result = pipe(
        image=request.image, prompt=args.prompt, tracks=tracks[held],
        visibility=visibility[held], negative_prompt=args.negative_prompt, height=args.height,
        width=args.width, num_frames=args.num_frames, num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale, generator=generator, output_type="np",
    )  # fmt: skip
    frames = np.clip(np.rint(result.frames[0] * 255.0), 0, 255).astype(np.uint8)
    return frames[: len(tracks)]


def _point_tracks(args: argparse.Namespace, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """--point_tracks at --num_frames, moved with the image (`first`, as given) into its letterbox at the output
    size, and their visibility."""
    from das_core.tracking import video

    tracks, visibility = load_point_tracks(args.point_tracks)
    if len(tracks) != args.num_frames:
        chosen = video.sample_indices(len(tracks), args.num_frames)
        tracks, visibility = tracks[chosen], visibility[chosen]
    # .npy tracks are pixels of the image as given: move them with it into the letterbox.
    return video.fit_points(tracks, (first.shape[1], first.shape[0]), (args.width, args.height)), visibility


def load_point_tracks(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """DIR/tracks.npy [1, T, N, 2] (or [T, N, 2]) and DIR/visibility.npy [1, T, N] (or [T, N]), as Wan-Move's
    generate.py and `das render-tracks` have them: float32 tracks and bool visibility."""
    paths = [folder / "tracks.npy", folder / "visibility.npy"]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DasError(f"{', '.join(missing)} missing; write point tracks with das render-tracks")
    tracks, visibility = (np.load(path, allow_pickle=False) for path in paths)
    if tracks.ndim == 4 and len(tracks) == 1:
        tracks = tracks[0]
    if visibility.ndim == 3 and len(visibility) == 1:
        visibility = visibility[0]
    return tracks.astype(np.float32), visibility.astype(bool)
