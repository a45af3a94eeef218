"""`das infer` (the reference's inference flags, plus loading options) and `das tiny-model DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

_DTYPES = ("bfloat16", "float16", "float32")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `infer` and `tiny-model` to the `das` command."""
    infer = subparsers.add_parser(
        "infer",
        help="generate a video from an image and a tracking video with the DaS model",
        description="Generate a video that starts at an image and moves like a tracking video "
        "(DaS image-to-video). The tracking video is resampled to --num_frames frames and letterboxed to "
        "the output size; so is the image.",
    )
    infer.add_argument("--prompt", required=True, help="what the video shows")
    infer.add_argument("--negative_prompt", default=None, help="what to avoid (default: the reference's)")
    infer.add_argument(
        "--model_path",
        default="EXCAI/Diffusion-As-Shader",
        help="hub id or folder with the published layout (default: %(default)s)",
    )
    infer.add_argument("--tracking_path", required=True, help="tracking video file or folder of frames")
    infer.add_argument(
        "--image_or_video_path", required=True, help="first-frame image, or a video whose first frame is used"
    )
    infer.add_argument("--generate_type", default="i2v", choices=["i2v"], help="only image-to-video (i2v)")
    infer.add_argument("--num_inference_steps", type=int, default=50, help="denoising steps (default: 50)")
    infer.add_argument("--guidance_scale", type=float, default=6.0, help="CFG scale (default: 6.0)")
    infer.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    infer.add_argument("--fps", type=float, default=DAS_WINDOW.fps, help="frame rate of the MP4 (default: %(default)g)")
    infer.add_argument("--output_path", default="./output.mp4", help="MP4 to write (default: %(default)s)")
    infer.add_argument(
        "--offload",
        default="none",
        choices=["none", "model", "sequential"],
        help="none: all on the GPU (~32 GB); model: one component at a time (24 GB cards); sequential: least memory",
    )
    infer.add_argument("--dtype", default="bfloat16", choices=_DTYPES, help="weights dtype (default: bfloat16)")
    infer.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: cuda if present)")
    infer.add_argument(
        "--tracking_normalization",
        default="reference",
        choices=["reference", "training"],
        help="tracking frames into the VAE in [0, 1] (reference inference, default) or [-1, 1] (training)",
    )
    infer.add_argument(
        "--height",
        type=int,
        default=None,
        help=f"output height (default: the model's, if it makes one size only, else {DAS_WINDOW.height})",
    )
    infer.add_argument(
        "--width",
        type=int,
        default=None,
        help=f"output width (default: the model's, if it makes one size only, else {DAS_WINDOW.width})",
    )
    infer.add_argument("--num_frames", type=int, default=DAS_WINDOW.frames, help="output frames (default: %(default)s)")
    infer.set_defaults(func=run_infer)

    tiny = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random DaS model in the published layout (tests, demos, offline tries)",
        description="Write a tiny DaS model (random weights, no download) laid out like "
        "EXCAI/Diffusion-As-Shader, for `das infer --model_path DIR` (which generates at its 96 x 64).",
    )
    tiny.add_argument("directory", help="folder to write (created)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    tiny.set_defaults(func=run_tiny_model)


def run_infer(args: argparse.Namespace) -> int:
    """Read inputs first (cheap, fails fast), then the model's configs, fit the inputs, load, generate, write."""
    import numpy as np
    import torch

    from das_core.model.loading import load_pipeline, resolve_model_folder
    from das_core.model.pipeline import DEFAULT_NEGATIVE_PROMPT
    from das_core.tracking import video

    tracking = video.read_video(args.tracking_path)
    if len(tracking) == 0:
        raise DasError(f"tracking video {args.tracking_path} has no frames")
    first = video.read_video(args.image_or_video_path)[0]
    folder = resolve_model_folder(args.model_path)
    args.height, args.width = _output_size(args.height, args.width, folder)
    tracking = tracking[video.sample_indices(len(tracking), args.num_frames)]
    tracking = video.fit_frames(tracking, width=args.width, height=args.height)
    image = video.fit_frames(first, width=args.width, height=args.height, resample="bilinear")

    pipe = load_pipeline(folder, device=args.device, dtype=getattr(torch, args.dtype), offload=args.offload)
    pipe.set_progress_bar_config(desc="das infer", unit="step")
    result = pipe(
        image,
        args.prompt,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT if args.negative_prompt is None else args.negative_prompt,
        tracking_video=tracking,
        tracking_normalization=args.tracking_normalization,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        generator=torch.Generator().manual_seed(args.seed),
        output_type="np",
    )
    frames = np.clip(np.rint(result.frames[0] * 255.0), 0, 255).astype(np.uint8)
    path = video.write_mp4(args.output_path, frames, fps=args.fps)
    print(f"wrote {path} ({len(frames)} frames, {args.width} x {args.height}, {args.fps:g} fps)")
    return 0


def _output_size(height: int | None, width: int | None, folder: Path) -> tuple[int, int]:
    """--height / --width; a size not given is the model's when it makes one size only, else DAS_WINDOW's."""
    from das_core.model.loading import model_fixed_size

    fixed = model_fixed_size(folder)
    if fixed is not None and height is None and width is None:
        print(
            f"das infer: this model makes {fixed[1]} x {fixed[0]} video only (learned positional embeddings); "
            "generating at that size",
            file=sys.stderr,
        )
        return fixed
    default = fixed or (DAS_WINDOW.height, DAS_WINDOW.width)
    return (default[0] if height is None else height, default[1] if width is None else width)


def run_tiny_model(args: argparse.Namespace) -> int:
    """Write the tiny model folder."""
    from das_core.model.tiny import TINY_HEIGHT, TINY_NUM_FRAMES, TINY_WIDTH, save_tiny_model

    directory = Path(args.directory)
    if directory.exists() and any(directory.iterdir()):
        raise DasError(f"{directory} exists and is not empty; choose a new folder")
    save_tiny_model(directory, seed=args.seed)
    print(f"wrote a tiny DaS model to {directory} (runs at {TINY_WIDTH} x {TINY_HEIGHT}, {TINY_NUM_FRAMES} frames)")
    return 0
