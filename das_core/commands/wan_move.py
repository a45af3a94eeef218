"""`das infer --model wan-move`: the Wan-Move pipeline run locally from a tracks file or `das render-tracks`' .npy files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from das_core.errors import DasError


def run_wan_move_infer(args: argparse.Namespace) -> int:
    """Image and point tracks first (cheap, fails fast), then the model; writes the MP4."""
    import torch

    from das_core.model.wan_move.loading import DEFAULT_MODEL, load_wan_move_pipeline
    from das_core.tracking import video

    image, tracks, visibility = _inputs(args)
    pipe = load_wan_move_pipeline(
        args.model_path or DEFAULT_MODEL,
        **({"base_model": args.base_model} if args.base_model else {}),
        device=args.device,
        dtype=getattr(torch, args.dtype),
        offload=args.offload,
    )
    pipe.set_progress_bar_config(desc="das infer wan-move", unit="step")
    generator = torch.Generator(device=pipe._execution_device).manual_seed(args.seed)
    result = pipe(
        image=image, prompt=args.prompt, tracks=tracks, visibility=visibility, negative_prompt=args.negative_prompt,
        height=args.height, width=args.width, num_frames=args.num_frames, num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale, generator=generator, output_type="np",
    )  # fmt: skip
    frames = np.clip(np.rint(result.frames[0] * 255.0), 0, 255).astype(np.uint8)
    path = video.write_mp4(args.output_path, frames, fps=args.fps)
    print(f"wrote {path} ({len(frames)} frames, {args.width} x {args.height}, {args.fps:g} fps, Wan-Move)")
    return 0


def _inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image letterboxed to the output size and the tracks (in its pixels, at --num_frames) with visibility."""
    from das_core.tracking import video
    from das_core.tracking.point_tracks import point_tracks
    from das_core.tracking.tracks import Tracks

    if (args.tracks is None) == (args.point_tracks is None):
        raise DasError("das infer --model wan-move needs --tracks TRACKS.npz or --point_tracks DIR (one of them)")
    size = (args.width, args.height)
    first = video.read_video(args.image_or_video_path)[0]
    image = video.fit_frames(first, *size, resample="bilinear")
    if args.tracks is not None:
        points = point_tracks(Tracks.load(args.tracks), args.num_frames, size, progress=True)
        return image, points.xy, points.visible
    tracks, visibility = load_point_tracks(args.point_tracks)
    if len(tracks) != args.num_frames:
        chosen = video.sample_indices(len(tracks), args.num_frames)
        tracks, visibility = tracks[chosen], visibility[chosen]
    # .npy tracks are pixels of the image as given: move them with it into the letterbox.
    return image, video.fit_points(tracks, (first.shape[1], first.shape[0]), size), visibility


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
