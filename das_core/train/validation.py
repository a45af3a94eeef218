"""Validation videos during training: `--validation_prompt`, `--validation_images`, `--tracking_map_path`.

Prompts and images are split by `--validation_prompt_separator` (as the reference); the tracking
video(s) too, where one tracking video serves every prompt. Each input is sized to the training
bucket nearest to its tracking video and sampled (the inference way, `sample_indices`) to the
model's own frame count (`sample_frames`, 49 for DaS): checkpoints with learned positional
embeddings generate that length only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from das_core.errors import DasError, plural
from das_core.train.layout import nearest_resolution


@dataclass(frozen=True)
class ValidationInput:
    """One validation prompt with its image uint8 [H, W, 3] and tracking video uint8 [T, H, W, 3]."""

    prompt: str
    image: np.ndarray
    tracking: np.ndarray

    @property
    def size(self) -> tuple[int, int, int]:
        """(frames, height, width) to generate at."""
        return self.tracking.shape[0], self.tracking.shape[1], self.tracking.shape[2]


def load_validation_inputs(args: argparse.Namespace, num_frames: int) -> list[ValidationInput]:
    """Read and size every validation input; mismatched counts raise `DasError`."""
    from das_core.tracking.video import fit_frames, read_video, sample_indices

    separator = args.validation_prompt_separator
    prompts = args.validation_prompt.split(separator)
    images = args.validation_images.split(separator)
    trackings = args.tracking_map_path.split(separator)
    if len(images) != len(prompts) or len(trackings) not in (1, len(prompts)):
        raise DasError(
            f"{plural(len(prompts), 'validation prompt')}, {plural(len(images), 'image')} and "
            f"{plural(len(trackings), 'tracking video')}; "
            "give one image per prompt and one tracking video per prompt (or one for all)"
        )
    inputs = []
    for index, prompt in enumerate(prompts):
        tracking = read_video(Path(trackings[index if len(trackings) > 1 else 0].strip()))
        height, width = nearest_resolution(*tracking.shape[1:3], args.height_buckets, args.width_buckets)
        tracking = fit_frames(tracking[sample_indices(tracking.shape[0], num_frames)], width=width, height=height)
        image = fit_frames(read_video(Path(images[index].strip()))[0], width=width, height=height, resample="bilinear")
        inputs.append(ValidationInput(prompt.strip(), image, tracking))
    return inputs


def run_validation(args, accelerator, parts, transformer, epoch: int, dtype: torch.dtype) -> list[Path]:
    """Generate `--num_validation_videos` per validation prompt, save MP4s and log them; returns the paths.

    Video `n` of a prompt is seeded with `--seed` + n (42 when no seed), so it can be regenerated.
    """
    from diffusers import CogVideoXDPMScheduler

    from das_core.model.pipeline import DasImageToVideoPipeline
    from das_core.tracking.video import write_mp4

    inputs = load_validation_inputs(args, transformer.config.sample_frames)
    transformer.eval()
    pipe = DasImageToVideoPipeline(
        tokenizer=parts.tokenizer,
        text_encoder=parts.text_encoder,
        vae=parts.vae,
        transformer=transformer,
        scheduler=CogVideoXDPMScheduler.from_config(parts.scheduler.config, timestep_spacing="trailing"),
    )
    if args.enable_model_cpu_offload and torch.cuda.is_available():
        pipe.enable_model_cpu_offload(device=accelerator.device)
    pipe.set_progress_bar_config(disable=True)
    folder = Path(args.output_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    seed = args.seed if args.seed is not None else 42
    generator = torch.Generator(device="cpu")
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    for index, item in enumerate(inputs):
        num_frames, height, width = item.size
        for number in range(args.num_validation_videos):
            # Reproducible videos: the generator and the global RNG (which the pipeline's tracking encode
            # uses, as the reference does) are seeded here, and training's RNG state is put back after.
            generator.manual_seed(seed + number)
            with (
                torch.random.fork_rng(devices=devices),
                torch.autocast(accelerator.device.type, dtype=dtype, enabled=dtype != torch.float32),
            ):
                torch.manual_seed(seed + number)
                frames = pipe(
                    image=item.image,
                    prompt=item.prompt,
                    tracking_video=item.tracking,
                    tracking_normalization=args.tracking_normalization,
                    num_frames=num_frames,
                    height=height,
                    width=width,
                    num_inference_steps=args.validation_num_inference_steps,
                    guidance_scale=args.guidance_scale,
                    use_dynamic_cfg=args.use_dynamic_cfg,
                    generator=generator,
                    output_type="np",
                    max_sequence_length=transformer.config.max_text_seq_length,
                ).frames[0]
            frames = (np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8)
            path = folder / f"epoch-{epoch:04d}-prompt-{index}-{number}.mp4"
            write_mp4(path, frames, fps=8)
            paths.append(path)
            _log_video(accelerator, f"validation/prompt-{index}-{number}", frames, epoch, path, item.prompt)
    transformer.train()
    return paths


def _log_video(accelerator, tag: str, frames: np.ndarray, epoch: int, path: Path, prompt: str) -> None:
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            # first, middle and last frame: TensorBoard's own video panel needs moviepy
            picks = frames[[0, len(frames) // 2, len(frames) - 1]]
            tracker.writer.add_images(tag, picks, epoch, dataformats="NHWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({tag: wandb.Video(str(path), caption=prompt)}, step=epoch)
