"""`das infer` (the reference's inference flags, plus loading options; DaS or Wan-Move), `das tiny-model DIR`
and `das convert` (a Wan-Move DiT from the original layout to diffusers')."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW, ModelWindow

if TYPE_CHECKING:
    import numpy as np

    from das_core.wire.protocol import JobRequest

_DTYPES = ("bfloat16", "float16", "float32")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `infer`, `tiny-model` and `convert` to the `das` command."""
    _register_infer(subparsers)
    _register_tiny_model(subparsers)
    _register_convert(subparsers)


def _register_infer(subparsers: argparse._SubParsersAction) -> None:
    infer = subparsers.add_parser(
        "infer",
        help="generate a video from an image and its motion with the DaS or Wan-Move model",
        description="Generate a video that starts at an image and moves like a tracking video (DaS "
        "image-to-video) or along point tracks (--model wan-move). --tracks (every frame of a shot, das export) "
        "makes the whole shot, as `das generate --tracks` does: the model's frames are planned at its frame "
        "rate (DaS 8, Wan-Move 16 fps), their control made at the output size, and the model runs on windows "
        "of --num_frames in order, each starting at the last frame of the one before; the MP4 holds every frame "
        "of the tracks at their frame rate (--frames every) or the model's frames (--frames model). A tracking "
        "video (--tracking_path, DaS) or .npy point tracks (--point_tracks DIR, das render-tracks) are "
        "resampled to --num_frames frames and run as one window. Images and controls are letterboxed to the "
        "output size. Wan-Move's defaults are 832x480, 81 frames, 40 steps, guidance 5 at 16 fps.",
    )
    infer.add_argument("--model", choices=("das", "wan-move"), default="das", help="which model (default: das)")
    infer.add_argument("--prompt", required=True, help="what the video shows")
    infer.add_argument("--negative_prompt", default=None, help="what to avoid (default: the reference's)")
    infer.add_argument(
        "--model_path",
        default=None,
        help="hub id or folder with the published layout (default: EXCAI/Diffusion-As-Shader, or "
        "Ruihang/Wan-Move-14B-480P with --model wan-move)",
    )
    infer.add_argument("--base_model", default=None, help="wan-move: the diffusers Wan 2.1 I2V base (hub id or folder)")
    infer.add_argument("--tracking_path", default=None, help="das: tracking video file or folder of frames")
    infer.add_argument(
        "--tracks", type=Path, default=None, help="tracks of every frame of a shot (das export): the whole shot"
    )
    infer.add_argument(
        "--frames",
        default=None,
        metavar="every|model",
        help="with --tracks, what the MP4 holds: every frame of the tracks at their frame rate, or the model's "
        "frames at its rate (default: every)",
    )
    infer.add_argument(
        "--point_tracks",
        type=Path,
        default=None,
        help="wan-move: DIR with tracks.npy, visibility.npy (das render-tracks)",
    )
    infer.add_argument(
        "--image_or_video_path", required=True, help="first-frame image, or a video whose first frame is used"
    )
    infer.add_argument("--generate_type", default="i2v", choices=["i2v"], help="only image-to-video (i2v)")
    infer.add_argument("--num_inference_steps", type=int, default=None, help="denoising steps (default: 50, 40)")
    infer.add_argument("--guidance_scale", type=float, default=None, help="CFG scale (default: 6.0, 5.0)")
    infer.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    infer.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the MP4 (default: the tracks' with --frames every, else 8, 16)",
    )
    infer.add_argument("--output_path", default="./output.mp4", help="MP4 to write (default: %(default)s)")
    infer.add_argument(
        "--offload",
        default="none",
        choices=["none", "model", "sequential", "group"],
        help="none: all on the GPU (~32 GB); model: one component at a time (24 GB cards); sequential (das), "
        "group (wan-move): least memory",
    )
    infer.add_argument("--dtype", default="bfloat16", choices=_DTYPES, help="weights dtype (default: bfloat16)")
    infer.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: cuda if present)")
    infer.add_argument(
        "--tracking_normalization",
        default="reference",
        choices=["reference", "training"],
        help="tracking frames into the VAE in [0, 1] (reference inference, default) or [-1, 1] (training)",
    )
    _output_arguments(infer)
    infer.set_defaults(func=run_infer)


def _output_arguments(infer: argparse.ArgumentParser) -> None:
    """--height, --width and --num_frames, whose defaults depend on the model."""
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
        help="output width (default: the model's, if it makes one size only, else "
        f"{DAS_WINDOW.width}; {WAN_MOVE_WINDOW.width} for wan-move)",
    )
    infer.add_argument(
        "--num_frames",
        type=int,
        default=None,
        help=f"frames the model makes per window (default: {DAS_WINDOW.frames}; {WAN_MOVE_WINDOW.frames} for wan-move)",
    )


def _register_tiny_model(subparsers: argparse._SubParsersAction) -> None:
    tiny = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random DaS model in the published layout (tests, demos, offline tries)",
        description="Write a tiny DaS model (random weights, no download) laid out like "
        "EXCAI/Diffusion-As-Shader, for `das infer --model_path DIR` (which generates at its 96 x 64).",
    )
    tiny.add_argument("directory", help="folder to write (created)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    tiny.set_defaults(func=run_tiny_model)


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        "convert",
        help="convert a Wan-Move DiT from the original layout to a diffusers folder",
        description="Read the published Wan-Move DiT (original Wan layout: config.json and safetensors shards) "
        "and write it in diffusers' WanTransformer3DModel layout, which loads without conversion.",
    )
    convert.add_argument("original", type=Path, metavar="ORIGINAL_DIR", help="folder in the original layout")
    convert.add_argument("-o", "--output", required=True, type=Path, metavar="DIFFUSERS_DIR", help="folder to write")
    convert.add_argument("--dtype", default="bfloat16", choices=_DTYPES, help="weights dtype (default: bfloat16)")
    convert.set_defaults(func=run_convert)


def run_infer(args: argparse.Namespace) -> int:
    """Read inputs first (cheap, fails fast), then the model's configs, fit the inputs, load, generate, write."""
    import torch

    from das_core.commands.infer_shot import refuse_frames_without_tracks, run_shot, shot_tracks

    window = WAN_MOVE_WINDOW if args.model == "wan-move" else DAS_WINDOW
    steps, guidance = (40, 5.0) if args.model == "wan-move" else (50, 6.0)
    args.num_inference_steps = args.num_inference_steps or steps
    args.guidance_scale = guidance if args.guidance_scale is None else args.guidance_scale
    args.num_frames = args.num_frames or window.frames
    refuse_frames_without_tracks(args)
    if args.tracks is None:
        args.fps = args.fps or window.fps  # with --tracks: the tracks' or the model's, as --frames says
    if args.model == "wan-move":
        from das_core.commands.wan_move import run_wan_move_infer

        args.width, args.height = args.width or window.width, args.height or window.height
        return run_wan_move_infer(args)
    if (args.tracking_path is None) == (args.tracks is None):
        raise DasError(
            "das infer needs --tracks TRACKS.npz (a whole shot) or --tracking_path (a tracking video), one of them"
        )

    from das_core.model.loading import DEFAULT_MODEL, load_pipeline, resolve_model_folder
    from das_core.tracking import video
    from das_core.wire.protocol import JobRequest

    tracks = shot_tracks(args) if args.tracks is not None else None
    tracking = video.read_video(args.tracking_path) if tracks is None else None
    if tracking is not None and len(tracking) == 0:
        raise DasError(f"tracking video {args.tracking_path} has no frames")
    first = video.read_video(args.image_or_video_path)[0]
    folder = resolve_model_folder(args.model_path or DEFAULT_MODEL)
    args.height, args.width = _output_size(args.height, args.width, folder)
    pipe = load_pipeline(folder, device=args.device, dtype=getattr(torch, args.dtype), offload=args.offload)
    pipe.set_progress_bar_config(desc="das infer", unit="step")
    if tracks is not None:
        window = ModelWindow(args.width, args.height, args.num_frames, DAS_WINDOW.fps)
        return run_shot(args, tracks, first, window, lambda request: _das_frames(pipe, args, request))

    tracking = tracking[video.sample_indices(len(tracking), args.num_frames)]
    tracking = video.fit_frames(tracking, width=args.width, height=args.height)
    image = video.fit_frames(first, width=args.width, height=args.height, resample="bilinear")
    frames = _das_frames(pipe, args, JobRequest(prompt=args.prompt, image=image, tracking=tracking))
    path = video.write_mp4(args.output_path, frames, fps=args.fps)
    print(f"wrote {path} ({len(frames)} frames, {args.width} x {args.height}, {args.fps:g} fps)")
    return 0


def _das_frames(pipe, args: argparse.Namespace, request: JobRequest) -> np.ndarray:
    """The DaS pipeline on one window (`request`: its image and tracking video at the output size), uint8, one
    frame per tracking frame (a shorter window is held to --num_frames, then cut back)."""
    import numpy as np
    import torch

    from das_core.model.pipeline import DEFAULT_NEGATIVE_PROMPT
    from das_core.tracking.video import model_frame_indices

    result = pipe(
        request.image,
        args.prompt,
        negative_prompt=DEFAULT_NEGATIVE_PROMPT if args.negative_prompt is None else args.negative_prompt,
        tracking_video=request.tracking[model_frame_indices(len(request.tracking), args.num_frames)],
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
    return frames[: len(request.tracking)]


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


def run_convert(args: argparse.Namespace) -> int:
    """Convert the DiT and write the diffusers folder."""
    import torch

    from das_core.model.wan_move.convert import is_original_layout, write_diffusers_transformer

    if not args.original.is_dir() or not is_original_layout(args.original):
        raise DasError(
            f"{args.original} is not a Wan-Move DiT in the original layout (config.json with `dim`, safetensors "
            "shards); get one with `hf download Ruihang/Wan-Move-14B-480P --local-dir weights/wan-move`"
        )
    path = write_diffusers_transformer(args.original, args.output, getattr(torch, args.dtype))
    print(f"wrote a diffusers Wan-Move DiT to {path}")
    return 0
