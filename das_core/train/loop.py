"""The accelerate training loop of the DaS tracking branch (reference recipe, spec §4).

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

import torch

from das_core.errors import DasError
from das_core.train import checkpoint as checkpoints
from das_core.train.args import DEFAULT_TRACKER_NAME
from das_core.train.components import complete_model_folder, freeze_to_tracking_branch, load_components
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


def _train(args: argparse.Namespace) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    output_dir = Path(args.output_dir)
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

    # Cheap checks first: a checkpoint typo or a broken dataset fails before minutes of model loading.
    resume = checkpoints.resolve_resume(output_dir, args.resume_from_checkpoint)
    samples = load_samples(
        args.data_root,
        args.dataset_file,
        caption_column=args.caption_column,
        video_column=args.video_column,
        tracking_column=args.tracking_column,
        image_column=args.image_column,
        id_token=args.id_token,
    )
    dataset = TrackingVideoDataset(
        samples,
        height_buckets=args.height_buckets,
        width_buckets=args.width_buckets,
        frame_buckets=args.frame_buckets,
        max_num_frames=args.max_num_frames,
    )
    weight_dtype = _weight_dtype(accelerator)
    parts = load_components(
        args.pretrained_model_name_or_path,
        num_tracking_blocks=args.num_tracking_blocks,
        dtype=weight_dtype,
        revision=args.revision,
        variant=args.variant,
        cache_dir=args.cache_dir,
    )
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
    _register_checkpoint_hooks(accelerator)

    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    trainable = [parameter for parameter in parts.transformer.parameters() if parameter.requires_grad]
    optimizer_class = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(
        trainable,
        lr=args.learning_rate,
        betas=(args.beta1, args.beta2),
        eps=args.epsilon,
        weight_decay=args.weight_decay,
    )

    sampler = BucketBatchSampler(dataset, args.train_batch_size, shuffle=True, seed=args.seed or 0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=args.dataloader_num_workers,
        pin_memory=args.pin_memory,
        persistent_workers=args.dataloader_num_workers > 0,
    )

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
    transformer, optimizer, loader, lr_scheduler = accelerator.prepare(
        parts.transformer, optimizer, loader, lr_scheduler
    )
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    if overrode_max_steps:
        args.max_train_steps = args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(args.max_train_steps / steps_per_epoch)

    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers(args.tracker_name or DEFAULT_TRACKER_NAME, config=_loggable(vars(args)))
    accelerator.print(
        f"training {sum(p.numel() for p in trainable):,} parameters ({len(trainable_names)} tensors) on "
        f"{len(dataset)} samples: {num_epochs} epoch(s), {args.max_train_steps} steps, batch "
        f"{args.train_batch_size} x {accelerator.num_processes} process(es) x {args.gradient_accumulation_steps} accumulation"
    )

    global_step, first_epoch, skip_batches = 0, 0, 0
    if args.resume_from_checkpoint and resume is None:
        accelerator.print(f"no checkpoint in {output_dir} yet; starting a new run")
    if resume is not None:
        accelerator.print(f"resuming from {resume}")
        accelerator.load_state(str(resume))
        global_step = checkpoints.checkpoint_step(resume)
        first_epoch = global_step // steps_per_epoch
        skip_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    result = TrainResult(global_step=global_step)
    unwrapped = accelerator.unwrap_model(transformer)
    alphas_cumprod = parts.scheduler.alphas_cumprod.to(accelerator.device, dtype=torch.float32)
    signed_tracking = args.tracking_normalization == "training"
    progress = tqdm(
        range(args.max_train_steps), initial=global_step, desc="steps", disable=not accelerator.is_local_main_process
    )

    for epoch in range(first_epoch, num_epochs):
        transformer.train()
        sampler.set_epoch(epoch)
        epoch_loader = accelerator.skip_first_batches(loader, skip_batches) if skip_batches else loader
        skip_batches = 0
        for batch in epoch_loader:
            with accelerator.accumulate(transformer):
                videos = to_model_range(batch["videos"].to(accelerator.device, non_blocking=True), weight_dtype)
                images = to_model_range(batch["images"].to(accelerator.device, non_blocking=True), weight_dtype)
                trackings = to_model_range(
                    batch["trackings"].to(accelerator.device, non_blocking=True), weight_dtype, signed=signed_tracking
                )
                latents = build_conditioning(
                    parts.vae,
                    videos,
                    images,
                    trackings,
                    noised_image_dropout=args.noised_image_dropout,
                )
                prompt_embeds = encode_prompts(
                    parts.tokenizer,
                    parts.text_encoder,
                    batch["prompts"],
                    unwrapped.config.max_text_seq_length,
                    accelerator.device,
                    weight_dtype,
                )
                batch_size, num_frames, _, height, width = latents.video.shape
                noise = torch.randn_like(latents.video)
                timesteps = sample_timesteps(parts.scheduler, batch_size, accelerator.device)
                rotary = rotary_embeddings(unwrapped.config, height, width, num_frames, accelerator.device)
                loss = denoising_loss(
                    transformer, parts.scheduler, latents, prompt_embeds, noise, timesteps, rotary, alphas_cumprod
                )
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

            if accelerator.sync_gradients:
                global_step += 1
                progress.update(1)
                loss_value = accelerator.gather(loss.detach()).mean().item()
                if not math.isfinite(loss_value):
                    raise DasError(
                        f"the loss became {loss_value} at step {global_step}; lower --learning_rate or check the data"
                    )
                result.losses.append(loss_value)
                logs = {"loss": loss_value, "lr": lr_scheduler.get_last_lr()[0]}
                if grad_norm is not None:
                    logs["gradient_norm_before_clip"] = float(grad_norm)
                progress.set_postfix(loss=f"{loss_value:.4g}")
                accelerator.log(logs, step=global_step)
                if global_step % args.checkpointing_steps == 0:
                    _save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
                if global_step >= args.max_train_steps:
                    break

        if args.validation_prompt and (epoch + 1) % args.validation_epochs == 0 and accelerator.is_main_process:
            result.validation_videos += run_validation(args, accelerator, parts, unwrapped, epoch + 1, weight_dtype)
        if global_step >= args.max_train_steps:
            break

    progress.close()
    accelerator.wait_for_everyone()
    result.global_step = global_step
    if accelerator.is_main_process:
        result.transformer_dir = output_dir / "transformer"
        if unwrapped.dtype != weight_dtype:  # fp16 runs keep trainables in fp32; save one dtype
            unwrapped.to(weight_dtype)
        unwrapped.save_pretrained(result.transformer_dir, safe_serialization=True, max_shard_size="5GB")
        complete_model_folder(output_dir, parts.folder)
        accelerator.print(f"saved the trained transformer to {result.transformer_dir}")
    accelerator.end_training()
    return result


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
