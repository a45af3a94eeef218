"""The reference DaS training objective (das_core/model/README.md, Objective), one function per step.

Per batch: VAE-encode the video, the noised conditioning image, the tracking video and the tracking
image (posterior samples x scaling factor); zero-pad the image latents to the latent frame count and,
with probability `noised_image_dropout`, zero both image latents; draw timesteps uniformly in
[0, num_train_timesteps); the transformer's v-prediction becomes x0 through
`scheduler.get_velocity(output, noisy, t)`; loss = mean(w * (x0 - clean)^2) with
w = 1 / (1 - alphas_cumprod[t]).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

IMAGE_NOISE_LOG_MEAN = -3.0
IMAGE_NOISE_LOG_STD = 0.5


@dataclass
class Conditioning:
    """Latents for one step, [B, F, C, h, w] each (F = latent frames)."""

    video: torch.Tensor  # clean video latents: the target
    image: torch.Tensor  # noised first-frame latents, zero-padded to F
    tracking: torch.Tensor  # tracking-video latents
    tracking_image: torch.Tensor  # first tracking frame latents, zero-padded to F


def encode(vae, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Frames [B, F, 3, H, W] in the VAE's range -> latents [B, f, C, h, w] (posterior sample x scale)."""
    latents = vae.encode(frames.permute(0, 2, 1, 3, 4)).latent_dist.sample(generator) * vae.config.scaling_factor
    return latents.permute(0, 2, 1, 3, 4).contiguous()


def noise_images(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise with sigma = exp(N(-3, 0.5)) per sample, as the reference does before encoding."""
    log_sigma = torch.normal(
        IMAGE_NOISE_LOG_MEAN,
        IMAGE_NOISE_LOG_STD,
        size=(images.shape[0],),
        generator=generator,
        device=images.device,
    ).to(images.dtype)
    sigma = log_sigma.exp().view(-1, *([1] * (images.ndim - 1)))
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + noise * sigma


def pad_to_frames(latents: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Zero-pad one-frame latents [B, 1, C, h, w] to [B, num_frames, C, h, w]."""
    padding = latents.new_zeros((latents.shape[0], num_frames - latents.shape[1], *latents.shape[2:]))
    return torch.cat([latents, padding], dim=1)


def build_conditioning(
    vae,
    videos: torch.Tensor,
    images: torch.Tensor,
    trackings: torch.Tensor,
    *,
    noised_image_dropout: float,
    generator: torch.Generator | None = None,
) -> Conditioning:
    """All latents of a step from frames already in the VAE's value range and dtype.

    `videos`, `trackings` [B, F, 3, H, W], `images` [B, 1, 3, H, W]. The tracking image is the first
    tracking frame. Image dropout is decided for the whole batch by Python's global `random`, as the
    reference does (accelerate checkpoints restore its state, so a resumed run draws the same).
    """
    with torch.no_grad():
        video_latents = encode(vae, videos, generator)
        image_latents = encode(vae, noise_images(images, generator), generator)
        tracking_latents = encode(vae, trackings, generator)
        tracking_image_latents = encode(vae, trackings[:, :1], generator)
    num_frames = video_latents.shape[1]
    image_latents = pad_to_frames(image_latents, num_frames)
    tracking_image_latents = pad_to_frames(tracking_image_latents, num_frames)
    if random.random() < noised_image_dropout:
        image_latents = torch.zeros_like(image_latents)
        tracking_image_latents = torch.zeros_like(tracking_image_latents)
    return Conditioning(video_latents, image_latents, tracking_latents, tracking_image_latents)


def sample_timesteps(scheduler, batch_size: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform integer timesteps in [0, num_train_timesteps)."""
    return torch.randint(
        0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator, device=device, dtype=torch.int64
    )


def v_prediction_loss(
    scheduler,
    model_output: torch.Tensor,
    noisy_latents: torch.Tensor,
    clean_latents: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """The reference loss: x0 = get_velocity(output, noisy, t); mean of w * (x0 - clean)^2, w = 1/(1 - a_t)."""
    prediction = scheduler.get_velocity(model_output, noisy_latents, timesteps)
    weights = (1.0 / (1.0 - alphas_cumprod[timesteps])).view(-1, *([1] * (prediction.ndim - 1)))
    per_sample = (weights * (prediction.float() - clean_latents.float()) ** 2).reshape(prediction.shape[0], -1)
    return per_sample.mean(dim=1).mean()


def denoising_loss(
    transformer,
    scheduler,
    latents: Conditioning,
    prompt_embeds: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    rotary,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """One step's loss: noise the video latents at `timesteps`, predict with the image and tracking
    conditioning (main input = noisy + image latents; tracking input = tracking + tracking-image
    latents), and weight the v-prediction error as the reference does."""
    noisy = scheduler.add_noise(latents.video, noise, timesteps)
    output = transformer(
        hidden_states=torch.cat([noisy, latents.image], dim=2),
        encoder_hidden_states=prompt_embeds,
        tracking_maps=torch.cat([latents.tracking, latents.tracking_image], dim=2),
        timestep=timesteps,
        image_rotary_emb=rotary,
        return_dict=False,
    )[0]
    return v_prediction_loss(scheduler, output, noisy, latents.video, timesteps, alphas_cumprod)


def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_length: int, device, dtype) -> torch.Tensor:
    """T5 embeddings [B, max_length, D] of `prompts`, padded/truncated like the CogVideoX pipelines."""
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        embeddings = text_encoder(tokens.input_ids.to(device))[0]
    return embeddings.to(dtype)
