"""Trainer flags: the reference DaS trainer's names, meanings and defaults, plus a few of ours.

Users know the reference `training/cogvideox_image_to_video_sft.py` command lines (das_core/model/README.md,
Flags), so every flag listed there keeps its name and default here. Flags we add are marked "(das)" in their help.
No torch import: `das train --help` and the dataset commands stay fast.
"""

from __future__ import annotations

import argparse

REFERENCE_BUCKETS = [256, 320, 384, 480, 512, 576, 720, 768, 960, 1024, 1280, 1536]
DEFAULT_TRACKER_NAME = "cogvideox-sft"
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every trainer flag to `parser` (used by `das train` and `python -m das_core.train`)."""
    _add_model_arguments(parser)
    _add_dataset_arguments(parser)
    _add_validation_arguments(parser)
    _add_run_arguments(parser)
    _add_optimizer_arguments(parser)
    _add_logging_arguments(parser)
    return parser


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Which model to start from."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--pretrained_model_name_or_path",
        required=True,
        help="Folder (or hub id) with tokenizer/, text_encoder/, vae/, scheduler/ and transformer/: a DaS "
        "checkpoint, or plain CogVideoX-5B-I2V (its blocks are copied into the tracking branch).",
    )
    group.add_argument("--revision", default=None, help="Hub revision of the pretrained model.")
    group.add_argument("--variant", default=None, help="Weights variant of the pretrained model, e.g. fp16.")
    group.add_argument("--cache_dir", default=None, help="Where downloaded models are stored.")


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the samples are and how they are cut into buckets."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--data_root", default=None, help="Dataset folder; every path in the dataset is relative to it.")
    group.add_argument(
        "--dataset_file",
        default=None,
        help="CSV file with named columns (caption, video, tracking, optional image) instead of the .txt files.",
    )
    group.add_argument(
        "--caption_column",
        default="text",
        help="CSV column with the prompts, or the file in --data_root with one prompt per line "
        "(the default falls back to prompt.txt when no file 'text' exists).",
    )
    group.add_argument(
        "--video_column",
        default="video",
        help="CSV column with the video paths, or the file in --data_root listing them "
        "(the default falls back to videos.txt when no file 'video' exists).",
    )
    group.add_argument(
        "--tracking_column",
        default=None,
        help="CSV column with the tracking-video paths, or the file in --data_root listing them "
        "(default: column 'tracking' / file trackings.txt).",
    )
    group.add_argument(
        "--image_column",
        default=None,
        help="(das) CSV column or file listing first-frame images (images.txt) to condition on instead of "
        "each video's first frame, e.g. for repainted first frames. Default: the video's first frame, as the reference.",
    )
    group.add_argument("--tracking_map_path", default=None, help="Tracking video(s) for the validation videos.")
    group.add_argument(
        "--num_tracking_blocks",
        type=int,
        default=None,
        help="Number of tracking (copy) blocks. Default: a DaS checkpoint's own; 18 (the reference's default) "
        "when converting plain CogVideoX.",
    )
    group.add_argument("--id_token", default=None, help="Identifier token put before each prompt.")
    group.add_argument("--height_buckets", nargs="+", type=int, default=list(REFERENCE_BUCKETS))
    group.add_argument("--width_buckets", nargs="+", type=int, default=list(REFERENCE_BUCKETS))
    group.add_argument("--frame_buckets", nargs="+", type=int, default=[49])
    group.add_argument(
        "--dataloader_num_workers", type=int, default=0, help="Loader processes; 0 loads in the main process."
    )
    group.add_argument("--pin_memory", action="store_true", help="Use pinned memory in the data loader.")
    group.add_argument(
        "--tracking_normalization",
        choices=("training", "reference"),
        default="training",
        help="(das) Tracking frames go to the VAE as [-1, 1] ('training', the reference trainer) or [0, 1] "
        "('reference', the reference inference and the pipeline's default); validation uses the same.",
    )


def _add_validation_arguments(parser: argparse.ArgumentParser) -> None:
    """The validation videos rendered while training."""
    group = parser.add_argument_group("validation")
    group.add_argument(
        "--validation_prompt", default=None, help="Validation prompt(s), split by --validation_prompt_separator."
    )
    group.add_argument(
        "--validation_images", default=None, help="Validation image path(s), split by --validation_prompt_separator."
    )
    group.add_argument("--validation_prompt_separator", default=":::", help="Separator of validation prompts.")
    group.add_argument("--num_validation_videos", type=int, default=1, help="Videos per validation prompt.")
    group.add_argument("--validation_epochs", type=int, default=50, help="Validate every N epochs.")
    group.add_argument("--guidance_scale", type=float, default=6.0, help="Guidance of the validation videos.")
    group.add_argument("--use_dynamic_cfg", action="store_true", help="Dynamic CFG in validation videos.")
    group.add_argument(
        "--validation_num_inference_steps",
        type=int,
        default=50,
        help="(das) Denoising steps of each validation video.",
    )
    group.add_argument("--enable_model_cpu_offload", action="store_true", help="Model CPU offload while validating.")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Length, batching, checkpoints, learning-rate schedule and memory savers."""
    group = parser.add_argument_group("training")
    group.add_argument("--seed", type=int, default=None, help="Seed for reproducible training.")
    group.add_argument(
        "--mixed_precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="Mixed precision; default: the accelerate config's value.",
    )
    group.add_argument("--output_dir", default="cogvideox-sft", help="Checkpoints, logs and the trained transformer.")
    group.add_argument("--max_num_frames", type=int, default=49, help="Videos are cut to at most this many frames.")
    group.add_argument("--train_batch_size", type=int, default=4, help="Batch size per device.")
    group.add_argument("--num_train_epochs", type=int, default=1)
    group.add_argument(
        "--max_train_steps", type=int, default=None, help="Optimizer steps; overrides --num_train_epochs."
    )
    group.add_argument("--checkpointing_steps", type=int, default=500, help="Save the training state every N steps.")
    group.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep at most N checkpoints.")
    group.add_argument(
        "--resume_from_checkpoint",
        default=None,
        help="A checkpoint-N folder (in --output_dir) or 'latest'.",
    )
    group.add_argument("--gradient_accumulation_steps", type=int, default=1)
    group.add_argument("--gradient_checkpointing", action="store_true", help="Trade compute for memory.")
    group.add_argument("--learning_rate", type=float, default=1e-4)
    group.add_argument(
        "--scale_lr", action="store_true", help="Multiply the learning rate by GPUs x accumulation x batch size."
    )
    group.add_argument("--lr_scheduler", choices=LR_SCHEDULERS, default="constant")
    group.add_argument("--lr_warmup_steps", type=int, default=500)
    group.add_argument("--lr_num_cycles", type=int, default=1, help="Hard restarts of cosine_with_restarts.")
    group.add_argument("--lr_power", type=float, default=1.0, help="Power of the polynomial scheduler.")
    group.add_argument("--enable_slicing", action="store_true", help="VAE slicing.")
    group.add_argument("--enable_tiling", action="store_true", help="VAE tiling.")
    group.add_argument(
        "--noised_image_dropout",
        type=float,
        default=0.05,
        help="Probability of zeroing the image and tracking-image latents of a step.",
    )


def _add_optimizer_arguments(parser: argparse.ArgumentParser) -> None:
    """The optimizer and gradient clipping."""
    group = parser.add_argument_group("optimizer")
    group.add_argument("--optimizer", type=str.lower, choices=OPTIMIZERS, default="adam")
    group.add_argument("--beta1", type=float, default=0.9)
    group.add_argument("--beta2", type=float, default=0.95)
    group.add_argument("--weight_decay", type=float, default=1e-4)
    group.add_argument("--epsilon", type=float, default=1e-8)
    group.add_argument("--max_grad_norm", type=float, default=1.0)


def _add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Logs, trackers and multi-process settings."""
    group = parser.add_argument_group("logging and distribution")
    group.add_argument(
        "--tracker_name", default=None, help=f"Project name in the logs (default {DEFAULT_TRACKER_NAME})."
    )
    group.add_argument("--logging_dir", default="logs", help="Log folder, relative to --output_dir.")
    group.add_argument("--allow_tf32", action="store_true", help="Allow TF32 matmuls on Ampere+ GPUs.")
    group.add_argument("--nccl_timeout", type=int, default=600, help="Seconds before a collective times out.")
    group.add_argument(
        "--report_to",
        choices=("tensorboard", "wandb", "all", "none"),
        default="tensorboard",
        help="Where to log: tensorboard (default), wandb (needs the wandb package), all, or none.",
    )


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of `python -m das_core.train` / `accelerate launch -m das_core.train`."""
    parser = argparse.ArgumentParser(
        prog="das train",
        description="Fine-tune the DaS tracking branch (copy blocks + combine linears) on a tracking dataset.",
    )
    return add_training_arguments(parser)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse trainer flags and check the combinations the flags alone cannot express."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problems = validate_args(args)
    if problems:
        parser.error("; ".join(problems))
    return args


def validate_args(args: argparse.Namespace) -> list[str]:
    """Every problem with the flag values, as readable sentences (empty when fine)."""
    problems = []
    if args.data_root is None and args.dataset_file is None:
        problems.append("give --data_root (and optionally --dataset_file) so the trainer has data")
    for name in ("height_buckets", "width_buckets", "frame_buckets"):
        values = getattr(args, name)
        if any(value <= 0 for value in values):
            problems.append(f"--{name} must be positive, got {values}")
    for value in args.height_buckets + args.width_buckets:
        if value % 16:
            problems.append(f"bucket size {value} is not a multiple of 16 (VAE x8 and patch x2)")
            break
    for value in args.frame_buckets:
        if (value - 1) % 4:
            problems.append(f"frame bucket {value} is not 4k+1 (the VAE compresses time by 4)")
            break
    if not 0.0 <= args.noised_image_dropout <= 1.0:
        problems.append(f"--noised_image_dropout must be in [0, 1], got {args.noised_image_dropout}")
    if args.validation_prompt is not None and (args.validation_images is None or args.tracking_map_path is None):
        problems.append("--validation_prompt needs --validation_images and --tracking_map_path")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        problems.append("--checkpoints_total_limit must be at least 1")
    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "validation_epochs"):
        if getattr(args, name) < 1:
            problems.append(f"--{name} must be at least 1")
    return problems
