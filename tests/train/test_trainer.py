"""The trainer end to end on the CPU: tiny real model, tiny synthesised dataset, real accelerate.

One 20-step run (checkpoints every 5 steps, at most 2 kept, one validation video at the end) is
shared by the tests below; a second run resumes from its step-15 checkpoint in a fresh folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH
from das_core.train.args import parse_args

STEPS = 20
TINY_FRAMES = 5  # as the tiny_dataset fixture renders
FIXED_TIMESTEPS = (50, 300, 600, 900)
VALIDATION = {"validation_prompt": "a red ball", "validation_epochs": STEPS, "validation_num_inference_steps": 2}


def _flags(model: Path, data: Path, output: Path, **extra) -> list[str]:
    flags = {
        "pretrained_model_name_or_path": model,
        "data_root": data,
        "output_dir": output,
        "num_tracking_blocks": 2,
        "height_buckets": TINY_HEIGHT,
        "width_buckets": TINY_WIDTH,
        "frame_buckets": TINY_FRAMES,
        "max_num_frames": TINY_FRAMES,
        "train_batch_size": 1,
        "max_train_steps": STEPS,
        "checkpointing_steps": 5,
        "checkpoints_total_limit": 2,
        "learning_rate": 2e-3,
        "lr_warmup_steps": 0,
        "seed": 0,
        "report_to": "tensorboard",
        **extra,
    }
    if "validation_prompt" in flags:
        data = Path(data)
        flags.update(
            validation_images=data / "images" / "00000.png",
            tracking_map_path=data / "tracking" / "00000_tracking.mp4",
        )
    argv = []
    for name, value in flags.items():
        argv += [f"--{name}", str(value)]
    return argv


@pytest.fixture(scope="module")
def run(tiny_model_dir, tiny_dataset, tmp_path_factory):
    from das_core.train.loop import train

    output = tmp_path_factory.mktemp("run")
    args = parse_args(_flags(tiny_model_dir, tiny_dataset, output, **VALIDATION))
    return output, train(args)


def _fixed_loss(parts, transformer) -> float:
    """Loss on the one sample at fixed timesteps, noise and posterior samples: comparable across models."""
    from das_core.train.dataset import collate, to_model_range
    from das_core.train.loop import rotary_embeddings
    from das_core.train.objective import build_conditioning, denoising_loss, encode_prompts

    batch = collate([parts.dataset[0]])
    generator = torch.Generator().manual_seed(7)
    latents = build_conditioning(
        parts.vae,
        to_model_range(batch["videos"], torch.float32),
        to_model_range(batch["images"], torch.float32),
        to_model_range(batch["trackings"], torch.float32),
        noised_image_dropout=0.0,
        generator=generator,
    )
    prompts = encode_prompts(parts.tokenizer, parts.text_encoder, batch["prompts"], 226, "cpu", torch.float32)
    _, frames, _, height, width = latents.video.shape
    rotary = rotary_embeddings(transformer.config, height, width, frames, "cpu")
    alphas = parts.scheduler.alphas_cumprod.float()
    total = 0.0
    with torch.no_grad():
        for step in FIXED_TIMESTEPS:
            timesteps = torch.tensor([step])
            noise = torch.randn(latents.video.shape, generator=generator)
            total += denoising_loss(
                transformer, parts.scheduler, latents, prompts, noise, timesteps, rotary, alphas
            ).item()
    return total / len(FIXED_TIMESTEPS)


@pytest.fixture(scope="module")
def parts(tiny_model_dir, tiny_dataset):
    from das_core.train.components import load_components
    from das_core.train.dataset import TrackingVideoDataset
    from das_core.train.layout import load_samples

    loaded = load_components(str(tiny_model_dir), num_tracking_blocks=2)
    loaded.dataset = TrackingVideoDataset(
        load_samples(tiny_dataset),
        height_buckets=[TINY_HEIGHT],
        width_buckets=[TINY_WIDTH],
        frame_buckets=[TINY_FRAMES],
        max_num_frames=TINY_FRAMES,
    )
    return loaded


def _trained(output: Path):
    from das_core.model import DasTransformer3DModel

    return DasTransformer3DModel.from_pretrained(output / "transformer")


def test_loss_is_finite_and_falls(run, parts):
    output, result = run
    assert result.global_step == STEPS
    assert len(result.losses) == STEPS
    assert all(np.isfinite(result.losses))
    before = _fixed_loss(parts, parts.transformer)
    after = _fixed_loss(parts, _trained(output))
    assert after < 0.9 * before, f"fixed-noise loss went {before:.4f} -> {after:.4f}"


def test_only_the_tracking_branch_changes(run, parts):
    from das_core.train.components import TRAINABLE_PREFIXES

    output, _ = run
    initial = parts.transformer.state_dict()
    trained = _trained(output).state_dict()
    assert initial.keys() == trained.keys()
    frozen = [name for name in initial if not name.startswith(TRAINABLE_PREFIXES)]
    tracking = [name for name in initial if name.startswith(TRAINABLE_PREFIXES)]
    assert frozen and tracking
    changed_frozen = [name for name in frozen if not torch.equal(initial[name], trained[name])]
    assert changed_frozen == []
    assert sum(not torch.equal(initial[name], trained[name]) for name in tracking) > len(tracking) // 2


def test_freeze_refuses_a_model_without_tracking_branch():
    from diffusers import CogVideoXTransformer3DModel

    from das_core.errors import DasError
    from das_core.train.components import freeze_to_tracking_branch

    plain = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=8,
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=16,
        num_layers=1,
        sample_width=12,
        sample_height=8,
        sample_frames=5,
    )
    with pytest.raises(DasError, match="tracking"):
        freeze_to_tracking_branch(plain)


def test_checkpoints_are_pruned_to_the_limit(run):
    output, _ = run
    names = sorted(path.name for path in output.glob("checkpoint-*"))
    assert names == ["checkpoint-15", "checkpoint-20"]
    assert (output / "checkpoint-20" / "transformer" / "config.json").is_file()
    assert (output / "checkpoint-20" / "optimizer.bin").is_file()


def test_resume_continues_at_the_same_step_with_the_same_state(run, tiny_model_dir, tiny_dataset, tmp_path):
    """Resuming from step 15 and training to 20 gives what the uninterrupted run gave, bit for bit."""
    from das_core.train.loop import train

    output, straight = run
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(output / "checkpoint-15", resumed_dir / "checkpoint-15")
    args = parse_args(_flags(tiny_model_dir, tiny_dataset, resumed_dir, resume_from_checkpoint="latest"))
    resumed = train(args)

    assert resumed.global_step == STEPS
    assert resumed.losses == pytest.approx(straight.losses[15:], rel=1e-5)
    final_straight = _trained(output).state_dict()
    final_resumed = _trained(resumed_dir).state_dict()
    worst = max((final_straight[name] - final_resumed[name]).abs().max().item() for name in final_straight)
    assert worst < 1e-5


def test_saved_transformer_loads_into_the_pipeline_and_generates(run, tiny_model_dir, tiny_dataset, tmp_path):
    """The output folder loads as a model and regenerates the run's last validation video exactly."""
    from das_core.model.loading import load_pipeline
    from das_core.model.tiny import TINY_NUM_FRAMES
    from das_core.tracking.video import read_video, write_mp4
    from das_core.train.validation import load_validation_inputs

    output, result = run
    assert (output / "vae").is_symlink() and (output / "model_index.json").is_file()
    item = load_validation_inputs(
        parse_args(_flags(tiny_model_dir, tiny_dataset, output, **VALIDATION)), TINY_NUM_FRAMES
    )[0]
    pipe = load_pipeline(output, device="cpu", dtype=torch.float32, vae_tiling=False)
    pipe.set_progress_bar_config(disable=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        frames = pipe(
            image=item.image,
            prompt=item.prompt,
            tracking_video=item.tracking,
            tracking_normalization="training",
            num_frames=TINY_NUM_FRAMES,
            height=TINY_HEIGHT,
            width=TINY_WIDTH,
            num_inference_steps=2,
            use_dynamic_cfg=False,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).frames[0]
    assert frames.shape == (TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert np.isfinite(frames).all()
    regenerated = (np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8)
    write_mp4(tmp_path / "again.mp4", regenerated, fps=8)  # encoded as the validation video was
    difference = np.abs(read_video(tmp_path / "again.mp4").astype(int) - read_video(result.validation_videos[0]))
    assert difference.max() <= 1


def test_validation_video_is_written_and_logged(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from das_core.model.tiny import TINY_NUM_FRAMES
    from das_core.tracking.video import read_video

    output, result = run
    assert [path.name for path in result.validation_videos] == [f"epoch-{STEPS:04d}-prompt-0-0.mp4"]
    video = read_video(result.validation_videos[0])
    assert video.shape == (TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    events = EventAccumulator(str(next((output / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "validation/prompt-0-0" in events.Tags()["images"]
    assert len(events.Scalars("loss")) == STEPS
