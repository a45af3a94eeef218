"""The DaS image-to-video pipeline: CogVideoX I2V sampling conditioned on a tracking video.

What it must match (scheduler, defaults, guidance, random-number order): das_core/model/README.md, Sampling.

`DasImageToVideoPipeline` reuses diffusers' `CogVideoXImageToVideoPipeline` for prompt encoding, latent
preparation, rotary embeddings and decoding, and owns the one denoising loop of the project: progress,
streamed previews and cancellation ride on `callback_on_step_end` and `interrupt`. `load_pipeline` (in
`das_core.model.loading`) builds it from the published checkpoint or a folder laid out like it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import PipelineImageInput
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
    CogVideoXImageToVideoPipeline,
    retrieve_timesteps,
)
from diffusers.schedulers import CogVideoXDPMScheduler
from diffusers.utils import BaseOutput

from das_core.errors import DasError
from das_core.model.inputs import to_unit_frame, to_unit_frames
from das_core.model.transformer import DasTransformer3DModel
from das_core.tracking.window import DAS_WINDOW

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "TRACKING_NORMALIZATIONS",
    "DasImageToVideoPipeline",
    "DasPipelineOutput",
    "dynamic_guidance_scale",
    "fixed_size",
]

# The reference inference's negative prompt (das_core/model/README.md, Sampling).
DEFAULT_NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. The "
    "background is solid. Strange body and strange trajectory. Distortion."
)

# "reference": tracking frames enter the VAE in [0, 1], as the reference inference does (the published
# demos were made this way). "training": rescaled to [-1, 1] first, as the reference training does.
TRACKING_NORMALIZATIONS = ("reference", "training")


def dynamic_guidance_scale(guidance_scale: float, timestep: float, num_inference_steps: int) -> float:
    """CogVideoX's dynamic CFG: `1 + g * (1 - cos(pi * ((N - t) / N) ** 5)) / 2` (README.md, Sampling)."""
    progress = (num_inference_steps - timestep) / num_inference_steps
    return 1 + guidance_scale * (1 - math.cos(math.pi * progress**5.0)) / 2


def fixed_size(transformer_config: Mapping[str, Any], spatial_factor: int) -> tuple[int, int] | None:
    """The one (height, width) a transformer with learned positional embeddings generates; None if any size works.

    `spatial_factor` is the VAE's spatial compression (8). Only the size is fixed, not the frame count:
    diffusers falls back to sin-cos embeddings for other lengths.
    """
    if not transformer_config.get("use_learned_positional_embeddings", False):
        return None
    return (transformer_config["sample_height"] * spatial_factor, transformer_config["sample_width"] * spatial_factor)


@dataclass
class DasPipelineOutput(BaseOutput):
    """Result of a DaS run.

    `frames`: per `output_type`, a list (one per video) of PIL frame lists ("pil"), a float array
    [B, F, H, W, 3] in [0, 1] ("np"), or the final latents [B, F, C, h, w] ("latent"). `None` when the run
    was interrupted, since decoding a half-denoised video would only waste time.
    """

    frames: Any
    interrupted: bool = False


@dataclass
class _Conditioning:
    """What the transformer sees at every step besides the noisy latents and the timestep.

    `prompt_embeds` is the guidance batch [negative, positive] when guidance is on; the loop doubles the image
    latents and the tracking input (`[1, F, 2C, h, w]`, or None) to match. A step callback may replace the
    prompt embeddings.
    """

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None
    image_latents: torch.Tensor
    tracking: torch.Tensor | None
    rotary: tuple[torch.Tensor, torch.Tensor] | None
    attention_kwargs: dict[str, Any] | None

    def doubled(self) -> _Conditioning:
        """The image latents and tracking input repeated for both guidance halves."""
        tracking = None if self.tracking is None else torch.cat([self.tracking] * 2)
        return replace(self, image_latents=torch.cat([self.image_latents] * 2), tracking=tracking)


@dataclass(frozen=True)
class _Guidance:
    """Classifier-free guidance of one run; with `dynamic`, the scale follows `dynamic_guidance_scale`."""

    scale: float
    dynamic: bool
    num_inference_steps: int

    @property
    def active(self) -> bool:
        """Whether the batch holds an unconditional and a conditional half."""
        return self.scale > 1.0


class DasImageToVideoPipeline(CogVideoXImageToVideoPipeline):
    """CogVideoX-5B-I2V sampling that follows a 3D tracking video, seed for seed like the reference."""

    # diffusers declares this a plain list.
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]  # noqa: RUF012

    def _check_settings(
        self,
        prompt: Any,
        tracking_normalization: str,
        num_inference_steps: int,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Refuse a bad prompt type, tracking normalisation, output type, step count or callback input."""
        if not isinstance(prompt, str):
            raise DasError(f"prompt must be a string, got {type(prompt).__name__}")
        if tracking_normalization not in TRACKING_NORMALIZATIONS:
            raise DasError(
                f"tracking_normalization is {tracking_normalization!r}; use one of {', '.join(TRACKING_NORMALIZATIONS)}"
            )
        if output_type not in ("pil", "np", "latent"):
            raise DasError(f"output_type is {output_type!r}; use 'pil', 'np' or 'latent'")
        if num_inference_steps < 1:
            raise DasError(f"num_inference_steps is {num_inference_steps}; it must be at least 1")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise DasError(
                f"callback tensor inputs {unknown} are not offered; choose from {self._callback_tensor_inputs}"
            )

    def check_tracking_inputs(
        self,
        image: Any,
        tracking_video: Any,
        tracking_latents: Any,
        tracking_image: Any,
        num_frames: int,
        height: int,
        width: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Validate the size, the image and the tracking inputs; return them as float frames in [0, 1].

        Returns `(image [1, 3, H, W], tracking_video [T, 3, H, W], tracking_image [1, 3, H, W])`; the tracking
        tensors are `None` when not given. Accepted forms: `das_core.model.inputs`.
        """
        self._check_size(num_frames, height, width)
        image = to_unit_frame(image, "image", height, width)
        video = None
        if tracking_video is not None:
            video = to_unit_frames(tracking_video, "tracking_video", height, width, num_frames)
        if tracking_latents is not None:
            if video is not None:
                raise DasError("give either tracking_video or tracking_latents, not both")
            expected = self._latent_shape(num_frames, height, width)
            if not isinstance(tracking_latents, torch.Tensor) or tuple(tracking_latents.shape) != expected:
                got = tuple(tracking_latents.shape) if hasattr(tracking_latents, "shape") else type(tracking_latents)
                raise DasError(f"tracking_latents must be a tensor of shape {expected} [B, F, C, h, w], got {got}")
            if tracking_image is None:
                raise DasError("tracking_latents need a tracking_image (the first tracking frame)")
        track_image = None
        if tracking_image is not None and video is None and tracking_latents is None:
            raise DasError("tracking_image was given without tracking_video or tracking_latents; give one of them")
        if tracking_image is not None:
            track_image = to_unit_frame(tracking_image, "tracking_image", height, width)
        elif video is not None:
            track_image = video[:1]
        return image, video, track_image

    def _check_size(self, num_frames: int, height: int, width: int) -> None:
        temporal = self.vae_scale_factor_temporal
        if num_frames < 1 or (num_frames - 1) % temporal:
            raise DasError(f"num_frames is {num_frames}; it must be {temporal}k + 1 ({DAS_WINDOW.frames} for DaS)")
        multiple = self.vae_scale_factor_spatial * self.transformer.config.patch_size
        if height % multiple or width % multiple:
            raise DasError(f"height x width is {height} x {width}; both must be multiples of {multiple}")
        sample = fixed_size(self.transformer.config, self.vae_scale_factor_spatial)
        if sample is not None and (height, width) != sample:
            raise DasError(
                f"this model generates {sample[1]} x {sample[0]} video only (learned positional embeddings); "
                f"got {width} x {height}. Generate at that size (das infer --height {sample[0]} --width "
                f"{sample[1]}) and fit inputs to it with das_core.tracking.video.fit_frames"
            )

    def _latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int, int]:
        return (
            1,
            (num_frames - 1) // self.vae_scale_factor_temporal + 1,
            self.transformer.config.in_channels // 2,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )

    def encode_tracking_video(self, tracking_video: torch.Tensor, tracking_normalization: str) -> torch.Tensor:
        """Encode tracking frames [T, 3, H, W] in [0, 1] to scaled latents [1, F, C, h, w].

        Samples the VAE posterior with the GLOBAL torch RNG, as the reference inference does (README.md, Sampling).
        """
        frames = tracking_video.to(device=self._execution_device, dtype=self.vae.dtype)
        if tracking_normalization == "training":
            frames = frames * 2 - 1
        frames = frames.unsqueeze(0).permute(0, 2, 1, 3, 4)  # [B, C, T, H, W]
        latents = self.vae.encode(frames).latent_dist.sample() * self.vae.config.scaling_factor
        return latents.permute(0, 2, 1, 3, 4)  # [B, F, C, h, w]

    @torch.no_grad()
    def __call__(
        self,
        image: PipelineImageInput,
        prompt: str,
        negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT,
        tracking_video: PipelineImageInput | None = None,
        tracking_latents: torch.Tensor | None = None,
        tracking_image: PipelineImageInput | None = None,
        tracking_normalization: str = "reference",
        num_frames: int = DAS_WINDOW.frames,
        height: int = DAS_WINDOW.height,
        width: int = DAS_WINDOW.width,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        use_dynamic_cfg: bool = True,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
        max_sequence_length: int = 226,
    ) -> DasPipelineOutput | tuple:
        """Generate `num_frames` frames that start at `image` and move like `tracking_video`.

        `image`, `tracking_video` and `tracking_image` take every form the reference and diffusers take (PIL
        images, uint8 or float arrays and tensors, with or without a batch dimension: `das_core.model.inputs`),
        at exactly `height` x `width` (fit them with `das_core.tracking.video.fit_frames`); the tracking video
        has `num_frames` frames. `tracking_latents`: already encoded and scaled [1, F, C, h, w] (then
        `tracking_image` is required; the reference passes its first tracking frame, [1, 3, H, W] in [0, 1]).
        `tracking_image` defaults to the first tracking frame. With neither tracking input the plain
        CogVideoX I2V model runs. The random-number order follows the reference (README.md, Sampling).
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs

        # 1. Check inputs before any heavy work.
        self._check_settings(
            prompt, tracking_normalization, num_inference_steps, output_type, list(callback_on_step_end_tensor_inputs)
        )
        image, video, track_image = self.check_tracking_inputs(
            image, tracking_video, tracking_latents, tracking_image, num_frames, height, width
        )
        self._guidance_scale = guidance_scale
        self._current_timestep = None
        self._attention_kwargs = attention_kwargs
        self._interrupt = False
        cfg = _Guidance(guidance_scale, use_dynamic_cfg, num_inference_steps)

        # 2. Tracking video latents (global RNG; the reference encodes them before anything else).
        if video is not None:
            tracking_latents = self.encode_tracking_video(video, tracking_normalization)

        # 3. Prompt embeddings; with guidance the batch is [negative, positive].
        prompt_embeds, negative_prompt_embeds = self._encode_prompts(
            prompt, negative_prompt, cfg.active, max_sequence_length
        )

        # 4. Timesteps (DPM with trailing spacing when loaded by load_pipeline).
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, self._execution_device)
        self._num_timesteps = len(timesteps)

        # 5. Latents and what the transformer sees beside them, in the reference's random-number order.
        latents, image_latents, tracking_input = self.prepare_tracking_latents(
            image, track_image, tracking_latents, num_frames, height, width, prompt_embeds.dtype, generator, latents
        )
        rotary = self._rotary_embeddings(height, width, latents.size(1))
        conditioning = _Conditioning(
            prompt_embeds, negative_prompt_embeds, image_latents, tracking_input, rotary, attention_kwargs
        )

        # 6. Denoising loop.
        latents = self._denoise(
            latents, timesteps, conditioning, cfg, generator, callback_on_step_end, callback_on_step_end_tensor_inputs
        )

        # 7. Decode (skipped when interrupted).
        return self._decode_output(latents, output_type, return_dict)

    def _encode_prompts(
        self, prompt: str, negative_prompt: str | None, classifier_free_guidance: bool, max_sequence_length: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompt embeddings, as the batch [negative, positive] with guidance, and the negative ones alone."""
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=classifier_free_guidance,
            num_videos_per_prompt=1,
            max_sequence_length=max_sequence_length,
            device=self._execution_device,
        )
        if classifier_free_guidance:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds], dim=0)
        return prompt_embeds, negative_prompt_embeds

    def prepare_tracking_latents(
        self,
        image: torch.Tensor,
        tracking_image: torch.Tensor | None,
        tracking_latents: torch.Tensor | None,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        generator: torch.Generator | None,
        latents: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Initial noise, image latents and the tracking input [1, F, 2C, h, w] (None without tracking).

        `image` and `tracking_image` are float frames [1, 3, H, W] in [0, 1].

        Random-number order of the reference: the image posterior, the initial noise, then the tracking-image
        posterior through a second call of the same routine whose own noise draw is discarded.
        """
        device = self._execution_device
        latent_channels = self.transformer.config.in_channels // 2
        image_tensor = self.video_processor.preprocess(image, height=height, width=width).to(device, dtype=dtype)
        latents, image_latents = self.prepare_latents(
            image_tensor, 1, latent_channels, num_frames, height, width, dtype, device, generator, latents
        )
        if tracking_latents is None:
            return latents, image_latents, None
        track_tensor = self.video_processor.preprocess(
            tracking_image.to(device=device, dtype=dtype), height=height, width=width
        ).to(device, dtype=dtype)
        _, tracking_image_latents = self.prepare_latents(
            track_tensor, 1, latent_channels, num_frames, height, width, dtype, device, generator, None
        )
        tracking_input = torch.cat([tracking_latents.to(device=device, dtype=dtype), tracking_image_latents], dim=2)
        return latents, image_latents, tracking_input

    def _rotary_embeddings(
        self, height: int, width: int, latent_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """3D rotary embeddings for this size, or None for a model without them."""
        if not self.transformer.config.use_rotary_positional_embeddings:
            return None
        return self._prepare_rotary_positional_embeddings(height, width, latent_frames, self._execution_device)

    def _denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: _Conditioning,
        cfg: _Guidance,
        generator: torch.Generator | None,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks | None,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> torch.Tensor:
        """The denoising loop: one guided step per timestep, then the callback; stops early when interrupted."""
        if cfg.active:
            conditioning = conditioning.doubled()
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, 0.0)  # the DPM step draws from the generator
        dtype = conditioning.prompt_embeds.dtype
        old_pred_original_sample = None
        with self.progress_bar(total=cfg.num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    break
                self._current_timestep = t
                noise_pred = self._guided_noise(latents, t, conditioning, cfg)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    latents, old_pred_original_sample = self.scheduler.step(
                        noise_pred,
                        old_pred_original_sample,
                        t,
                        timesteps[i - 1] if i > 0 else None,
                        latents,
                        **extra_step_kwargs,
                        return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)
                if callback_on_step_end is not None:
                    latents = self._run_callback(
                        callback_on_step_end, callback_on_step_end_tensor_inputs, i, t, latents, conditioning
                    )
                progress_bar.update()
        self._current_timestep = None
        return latents

    def _guided_noise(
        self, latents: torch.Tensor, t: torch.Tensor, conditioning: _Conditioning, cfg: _Guidance
    ) -> torch.Tensor:
        """The transformer's prediction at timestep `t`, combined across the CFG halves."""
        latent_model_input = torch.cat([latents] * 2) if cfg.active else latents
        latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)
        latent_model_input = torch.cat([latent_model_input, conditioning.image_latents], dim=2)
        timestep = t.expand(latent_model_input.shape[0])
        with self.transformer.cache_context("cond_uncond"):
            noise_pred = self._predict(latent_model_input, timestep, conditioning)
        noise_pred = noise_pred.float()
        if cfg.dynamic:
            self._guidance_scale = dynamic_guidance_scale(cfg.scale, t.item(), cfg.num_inference_steps)
        if cfg.active:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + self.guidance_scale * (noise_pred_text - noise_pred_uncond)
        return noise_pred

    def _run_callback(
        self,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks,
        tensor_inputs: list[str],
        i: int,
        t: torch.Tensor,
        latents: torch.Tensor,
        conditioning: _Conditioning,
    ) -> torch.Tensor:
        """Offer the step's tensors to the callback; take back the latents and prompt embeddings it returns."""
        offered = {
            "latents": latents,
            "prompt_embeds": conditioning.prompt_embeds,
            "negative_prompt_embeds": conditioning.negative_prompt_embeds,
        }
        callback_outputs = callback_on_step_end(self, i, t, {name: offered[name] for name in tensor_inputs}) or {}
        conditioning.prompt_embeds = callback_outputs.pop("prompt_embeds", conditioning.prompt_embeds)
        conditioning.negative_prompt_embeds = callback_outputs.pop(
            "negative_prompt_embeds", conditioning.negative_prompt_embeds
        )
        return callback_outputs.pop("latents", latents)

    def _decode_output(self, latents: torch.Tensor, output_type: str, return_dict: bool) -> DasPipelineOutput | tuple:
        """Decode the final latents as `output_type` asks (nothing when interrupted) and free offloaded models."""
        if self.interrupt:
            video_out = None
        elif output_type == "latent":
            video_out = latents
        else:
            decoded = self.decode_latents(latents)
            video_out = self.video_processor.postprocess_video(video=decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video_out,)
        return DasPipelineOutput(frames=video_out, interrupted=self.interrupt)

    def _predict(
        self, latent_model_input: torch.Tensor, timestep: torch.Tensor, conditioning: _Conditioning
    ) -> torch.Tensor:
        """One transformer call; a plain CogVideoX transformer is accepted when there is no tracking input."""
        kwargs = dict(
            hidden_states=latent_model_input,
            encoder_hidden_states=conditioning.prompt_embeds,
            timestep=timestep,
            image_rotary_emb=conditioning.rotary,
            attention_kwargs=conditioning.attention_kwargs,
            return_dict=False,
        )
        if isinstance(self.transformer, DasTransformer3DModel) or conditioning.tracking is not None:
            kwargs["tracking_maps"] = conditioning.tracking
        return self.transformer(**kwargs)[0]
