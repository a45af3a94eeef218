"""The accelerate training loop of the DaS tracking branch (das_core/model/README.md, Training).

`train(args)` runs on one process or many (`accelerate launch -m das_core.train ...`): loads the
model parts, freezes all but the tracking branch, loads the bucketed dataset, then per optimizer
step builds the reference conditioning and v-prediction loss (`das_core.train.objective`), clips,
steps, checkpoints every `--checkpointing_steps` (pruned to `--checkpoints_total_limit`), logs to
TensorBoard (or W&B), renders validation videos every `--validation_epochs` epochs, and finally
saves `OUTPUT_DIR/transformer` and links the frozen parts beside it, so `OUTPUT_DIR` is a model
folder `load_pipeline` (and `das infer`) loads.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from das_core.errors import DasError, plural
from das_core.train import checkpoint as checkpoints
from das_core.train.args import DEFAULT_TRACKER_NAME
from das_core.train.components import (
    Components,
    complete_model_folder,
    freeze_to_tracking_branch,
    load_components,
)
from das_core.train.dataset import BucketBatchSampler, TrackingVideoDataset, collate, to_model_range
from das_core.train.layout import load_samples
from das_core.train.objective import build_conditioning, denoising_loss, encode_prompts, sample_timesteps
from das_core.train.validation import run_validation

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run did: the last optimizer step, the loss of every step and where the transformer went."""

    global_step: int
    losses: list[float] = field(default_factory=list)
    transformer_dir: Path | None = None
    validation_videos: list[Path] = field(default_factory=list)


def train(args: argparse.Namespace) -> TrainResult:
    """Run training as `args` (from `das_core.train.args`) says; returns a `TrainResult`."""
    from accelerate.state import AcceleratorState

    try:
        return _train(args)
    finally:
        # accelerate keeps its state (mixed precision, devices) in a process-wide singleton; a second
        # run in the same process (tests, notebooks) must not inherit the first one's settings.
        AcceleratorState._reset_state(reset_partial_state=True)


@dataclass
class _Run:
    """The prepared parts of one training run, passed between the steps of `_train`."""

    args: argparse.Namespace
    accelerator: Any
    parts: Components
    transformer: torch.nn.Module  # as accelerate prepared it: wrapped for DDP when there are several processes
    unwrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    trainable: list[torch.nn.Parameter]
    weight_dtype: torch.dtype
    alphas_cumprod: torch.Tensor
    output_dir: Path


def _train(args: argparse.Namespace) -> TrainResult:
    """Set up (accelerator, data, model, optimizer, schedule, resume), train epoch by epoch, save."""
    from tqdm.auto import tqdm

    output_dir = Path(args.output_dir)
    accelerator = _make_accelerator(args, output_dir)
    # Cheap checks first: a checkpoint typo or a broken dataset fails before minutes of model loading.
    resume = checkpoints.resolve_resume(output_dir, args.resume_from_checkpoint)
    dataset = _load_dataset(args)
    weight_dtype = _weight_dtype(accelerator)
    parts, trainable_names = _load_model(args, accelerator, weight_dtype)
    _register_checkpoint_hooks(accelerator)
    optimizer, trainable = _make_optimizer(args, parts.transformer, accelerator.num_processes)
    sampler = BucketBatchSampler(dataset, args.train_batch_size, shuffle=True, seed=args.seed or 0)
    loader = _make_loader(args, dataset, sampler)
    transformer, optimizer, loader, lr_scheduler, steps_per_epoch = _prepare(
        args, accelerator, parts.transformer, optimizer, loader
    )
    num_epochs = math.ceil(args.max_train_steps / steps_per_epoch)
    _start_logging(args, accelerator, trainable, len(trainable_names), len(dataset), num_epochs)
    global_step, first_epoch, skip_batches = _resume(args, accelerator, resume, output_dir, steps_per_epoch)

    result = TrainResult(global_step=global_step)
    run = _Run(
        args=args,
        accelerator=accelerator,
        parts=parts,
        transformer=transformer,
        unwrapped=accelerator.unwrap_model(transformer),
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        trainable=trainable,
        weight_dtype=weight_dtype,
        alphas_cumprod=parts.scheduler.alphas_cumprod.to(accelerator.device, dtype=torch.float32),
        output_dir=output_dir,
    )
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    for epoch in range(first_epoch, num_epochs):
        transformer.train()
        sampler.set_epoch(epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip_batches) if skip_batches else loader
        skip_batches = 0
        global_step = _train_epoch(run, epoch_loader, global_step, result, progress)
        if args.validation_prompt and (epoch + 1) % args.validation_epochs == 0 and accelerator.is_main_process:
            result.validation_videos += run_validation(args, accelerator, parts, run.unwrapped, epoch + 1, weight_dtype)
        if global_step >= args.max_train_steps:
            break

    progress.close()
    accelerator.wait_for_everyone()
    result.global_step = global_step
    if accelerator.is_main_process:
        result.transformer_dir = _save_trained(run)
    accelerator.end_training()
    return result


def _make_accelerator(args: argparse.Namespace, output_dir: Path):
    """The accelerator of the run, with the seed, the output folder and TF32 set up."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    if args.report_to == "wandb" and importlib.util.find_spec("wandb") is None:
        raise DasError("--report_to wandb needs the wandb package: pip install wandb (or use the default tensorboard)")
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)
        ),
        kwargs_handlers=_kwargs_handlers(args.nccl_timeout),
    )
    if args.seed is not None:
        set_seed(args.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    return accelerator


def _load_dataset(args: argparse.Namespace) -> TrackingVideoDataset:
    """The samples the flags name, cut into the flags' resolution buckets."""
    samples = load_samples(
        args.data_root,
        args.dataset_file,
        caption_column=args.caption_column,
        video_column=args.video_column,
        tracking_column=args.tracking_column,
        image_column=args.image_column,
        id_token=args.id_token,
    )
    return TrackingVideoDataset(
        samples,
        height_buckets=args.height_buckets,
        width_buckets=args.width_buckets,
        frame_buckets=args.frame_buckets,
        max_num_frames=args.max_num_frames,
    )


def _load_model(args: argparse.Namespace, accelerator, weight_dtype: torch.dtype) -> tuple[Components, list[str]]:
    """The model parts on the device with all but the tracking branch frozen; also the trainable names."""
    parts = load_components(
        args.pretrained_model_name_or_path,
        num_tracking_blocks=args.num_tracking_blocks,
        dtype=weight_dtype,
        revision=args.revision,
        variant=args.variant,
        cache_dir=args.cache_dir,
    )
    args.num_tracking_blocks = parts.transformer.config.num_tracking_blocks  # what the logs record
    parts.text_encoder.requires_grad_(False)
    parts.vae.requires_grad_(False)
    trainable_names = freeze_to_tracking_branch(parts.transformer)
    for module in (parts.text_encoder, parts.vae, parts.transformer):
        module.to(accelerator.device)  # already loaded in weight_dtype
    if args.mixed_precision == "fp16":  # fp16 weights cannot take optimizer updates; keep trainables in fp32
        for parameter in parts.transformer.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    if args.enable_slicing:
        parts.vae.enable_slicing()
    if args.enable_tiling:
        parts.vae.enable_tiling()
    if args.gradient_checkpointing:
        parts.transformer.enable_gradient_checkpointing()
    return parts, trainable_names


def _make_optimizer(
    args: argparse.Namespace, transformer: torch.nn.Module, num_processes: int
) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
    """Adam or AdamW over the trainable parameters; `--scale_lr` scales the learning rate in `args` first."""
    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * num_processes
    trainable = [parameter for parameter in transformer.parameters() if parameter.requires_grad]
    optimizer_class = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(
        trainable,
        lr=args.learning_rate,
        betas=(args.beta1, args.beta2),
        eps=args.epsilon,
        weight_decay=args.weight_decay,
    )
    return optimizer, trainable


def _make_loader(
    args: argparse.Namespace, dataset: TrackingVideoDataset, sampler: BucketBatchSampler
) -> torch.utils.data.DataLoader:
    """Batches of one resolution bucket each, in the sampler's order."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.pin_memory,
        persistent_workers=args.dataloader_num_workers > 0,
    )


def _prepare(args: argparse.Namespace, accelerator, transformer, optimizer, loader) -> tuple:
    """The learning-rate schedule, then everything through `accelerator.prepare`; also the steps per epoch.

    Without `--max_train_steps`, `args.max_train_steps` becomes epochs x steps per epoch, counted again once
    the loader is sharded across processes.
    """
    from diffusers.optimization import get_scheduler

    overrode_max_steps = args.max_train_steps is None
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    if overrode_max_steps:
        args.max_train_steps = args.num_train_epochs * steps_per_epoch
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
        num_cycles=args.lr_num_cycles,
        power=args.lr_power,
    )
    transformer, optimizer, loader, lr_scheduler = accelerator.prepare(transformer, optimizer, loader, lr_scheduler)
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    if overrode_max_steps:
        args.max_train_steps = args.num_train_epochs * steps_per_epoch
    return transformer, optimizer, loader, lr_scheduler, steps_per_epoch


def _start_logging(
    args: argparse.Namespace, accelerator, trainable: list, num_tensors: int, num_samples: int, num_epochs: int
) -> None:
    """Start the trackers (main process) and print what is about to train."""
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(args.tracker_name or DEFAULT_TRACKER_NAME, config=_loggable(vars(args)))
    accelerator.print(
        f"training {sum(p.numel() for p in trainable):,} parameters ({plural(num_tensors, 'tensor')}) on "
        f"{plural(num_samples, 'sample')}: {plural(num_epochs, 'epoch')}, {plural(args.max_train_steps, 'step')}, "
        f"batch {args.train_batch_size} x {plural(accelerator.num_processes, 'process', 'processes')} x "
        f"{args.gradient_accumulation_steps} accumulation"
    )


def _resume(
    args: argparse.Namespace, accelerator, resume: Path | None, output_dir: Path, steps_per_epoch: int
) -> tuple[int, int, int]:
    """Load the checkpoint to resume from, if any; returns (global step, first epoch, batches to skip)."""
    if args.resume_from_checkpoint and resume is None:
        accelerator.print(f"no checkpoint in {output_dir} yet; starting a new run")
    if resume is None:
        return 0, 0, 0
    accelerator.print(f"resuming from {resume}")
    accelerator.load_state(str(resume))
    global_step = checkpoints.checkpoint_step(resume)
    skip_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps
    return global_step, global_step // steps_per_epoch, skip_batches


def _train_epoch(run: _Run, epoch_loader, global_step: int, result: TrainResult, progress) -> int:
    """One pass over the loader, or up to `--max_train_steps`; returns the global step reached."""
    args, accelerator = run.args, run.accelerator
    for batch in epoch_loader:
        with accelerator.accumulate(run.transformer):
            loss, grad_norm = _training_step(run, batch)
        if accelerator.sync_gradients:
            global_step += 1
            progress.update(1)
            _log_step(run, loss, grad_norm, global_step, result, progress)
            if global_step % args.checkpointing_steps == 0:
                _save_checkpoint(accelerator, run.output_dir, global_step, args.checkpoints_total_limit)
            if global_step >= args.max_train_steps:
                break
    return global_step


def _training_step(run: _Run, batch: dict) -> tuple[torch.Tensor, Any]:
    """Loss of one batch, backward, clipping on the steps that sync, then the optimizer and scheduler step."""
    accelerator = run.accelerator
    loss = _batch_loss(run, batch)
    accelerator.backward(loss)
    grad_norm = None
    if accelerator.sync_gradients:
        grad_norm = accelerator.clip_grad_norm_(run.trainable, run.args.max_grad_norm)
    run.optimizer.step()
    run.lr_scheduler.step()
    run.optimizer.zero_grad()
    return loss, grad_norm


def _batch_loss(run: _Run, batch: dict) -> torch.Tensor:
    """The reference objective on one batch (das_core.train.objective), on the device."""
    device, dtype, parts = run.accelerator.device, run.weight_dtype, run.parts
    videos = to_model_range(batch["videos"].to(device, non_blocking=True), dtype)
    images = to_model_range(batch["images"].to(device, non_blocking=True), dtype)
    signed_tracking = run.args.tracking_normalization == "training"
    trackings = to_model_range(batch["trackings"].to(device, non_blocking=True), dtype, signed=signed_tracking)
    latents = build_conditioning(
        parts.vae, videos, images, trackings, noised_image_dropout=run.args.noised_image_dropout
    )
    config = run.unwrapped.config
    prompt_embeds = encode_prompts(
        parts.tokenizer, parts.text_encoder, batch["prompts"], config.max_text_seq_length, device, dtype
    )
    batch_size, num_frames, _, height, width = latents.video.shape
    noise = torch.randn_like(latents.video)
    timesteps = sample_timesteps(parts.scheduler, batch_size, device)
    rotary = rotary_embeddings(config, height, width, num_frames, device)
    return denoising_loss(
        run.transformer, parts.scheduler, latents, prompt_embeds, noise, timesteps, rotary, run.alphas_cumprod
    )


def _log_step(run: _Run, loss: torch.Tensor, grad_norm: Any, global_step: int, result: TrainResult, progress) -> None:
    """Average the loss over processes, stop on a non-finite one, and log it with the learning rate."""
    loss_value = run.accelerator.gather(loss.detach()).mean().item()
    if not math.isfinite(loss_value):
        raise DasError(f"the loss became {loss_value} at step {global_step}; lower --learning_rate or check the data")
    result.losses.append(loss_value)
    logs = {"loss": loss_value, "lr": run.lr_scheduler.get_last_lr()[0]}
    if grad_norm is not None:
        logs["gradient_norm_before_clip"] = float(grad_norm)
    progress.set_postfix(loss=f"{loss_value:.4g}")
    run.accelerator.log(logs, step=global_step)


def _save_trained(run: _Run) -> Path:
    """Save the trained transformer and link the frozen parts beside it: the output folder is a model folder."""
    transformer_dir = run.output_dir / "transformer"
    if run.unwrapped.dtype != run.weight_dtype:  # fp16 runs keep trainables in fp32; save one dtype
        run.unwrapped.to(run.weight_dtype)
    run.unwrapped.save_pretrained(transformer_dir, safe_serialization=True, max_shard_size="5GB")
    complete_model_folder(run.output_dir, run.parts.folder)
    run.accelerator.print(f"saved the trained transformer to {transformer_dir}")
    return transformer_dir


def rotary_embeddings(config, latent_height: int, latent_width: int, num_frames: int, device):
    """3D rotary embeddings for latents of this size, or None when the model does not use them."""
    # Copied from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video
    # CogVideoXImageToVideoPipeline._prepare_rotary_positional_embeddings, in latent units
    # (height // (vae_scale * patch) in pixels is latent_height // patch).
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

    if not config.use_rotary_positional_embeddings:
        return None
    grid_height = latent_height // config.patch_size
    grid_width = latent_width // config.patch_size
    base_width = config.sample_width // config.patch_size
    base_height = config.sample_height // config.patch_size
    if config.patch_size_t is None:
        crops = get_resize_crop_region_for_grid((grid_height, grid_width), base_width, base_height)
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=crops,
            grid_size=(grid_height, grid_width),
            temporal_size=num_frames,
            device=device,
        )
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=None,
        grid_size=(grid_height, grid_width),
        temporal_size=(num_frames + config.patch_size_t - 1) // config.patch_size_t,
        grid_type="slice",
        max_size=(base_height, base_width),
        device=device,
    )


def _save_checkpoint(accelerator, output_dir: Path, step: int, total_limit: int | None) -> None:
    """Prune old checkpoints (main process), then save on every process (each writes its RNG state)."""
    if accelerator.is_main_process:
        removed = checkpoints.prune_checkpoints(output_dir, total_limit)
        if removed:
            logger.info("removed old checkpoints %s", ", ".join(path.name for path in removed))
    accelerator.wait_for_everyone()
    path = checkpoints.checkpoint_dir(output_dir, step)
    accelerator.save_state(str(path))
    logger.info("saved state to %s", path)


def _register_checkpoint_hooks(accelerator) -> None:
    """Checkpoints hold the transformer as a loadable `transformer/` folder instead of a raw state dict."""
    from das_core.model import DasTransformer3DModel

    def save_model_hook(models, weights, output_dir):
        if not accelerator.is_main_process:
            return
        for model in models:
            model = accelerator.unwrap_model(model)
            if not isinstance(model, DasTransformer3DModel):
                raise DasError(f"unexpected model in the checkpoint: {type(model).__name__}")
            model.save_pretrained(Path(output_dir) / "transformer", safe_serialization=True, max_shard_size="5GB")
            if weights:
                weights.pop()

    def load_model_hook(models, input_dir):
        while models:
            model = accelerator.unwrap_model(models.pop())
            saved = DasTransformer3DModel.from_pretrained(Path(input_dir) / "transformer", torch_dtype=model.dtype)
            model.load_state_dict(saved.state_dict())  # copies in place: dtypes and requires_grad stay
            del saved

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)


def _kwargs_handlers(nccl_timeout: int) -> list:
    """DDP settings and the NCCL timeout on GPUs."""
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    # Every trainable parameter (copy blocks, combine linears) takes part in each forward pass, so DDP
    # need not search for unused ones (the reference sets find_unused_parameters=True, which costs an
    # extra graph traversal per step); frozen parameters are not DDP's concern at all.
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=False)]
    if torch.cuda.is_available():  # naming a backend on a CPU-only machine makes accelerate expect a process group
        handlers.append(InitProcessGroupKwargs(backend="nccl", timeout=timedelta(seconds=nccl_timeout)))
    return handlers


def _weight_dtype(accelerator) -> torch.dtype:
    """The dtype of the frozen weights: what mixed precision (or the DeepSpeed config) asks for."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        config = plugin.deepspeed_config
        if config.get("bf16", {}).get("enabled"):
            return torch.bfloat16
        if config.get("fp16", {}).get("enabled"):
            return torch.float16
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def _loggable(config: dict) -> dict:
    """TensorBoard hparams take numbers, strings and booleans only."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in config.items()}
