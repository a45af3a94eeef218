"""The Wan-Move pipeline: Wan 2.1 image-to-video sampling that follows 2D point tracks.

`WanMovePipeline` reuses diffusers' `WanImageToVideoPipeline` for prompt encoding, the first-frame latent
and mask, and decoding. It owns the denoising loop: the conditional branch sees the track-edited image
latent, the unconditional one the plain latent (reference `wan/wan_move.py` `generate`), and progress and
cancel ride on `callback_on_step_end` and `interrupt`. README.md beside this file lists the reference facts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import get_module_execution_device

from das_core.errors import DasError
from das_core.model.wan_move.conditioning import TEMPORAL_STRIDE, replace_track_features
from das_core.tracking.window import WAN_MOVE_WINDOW

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "DEFAULT_SHIFT",
    "WanMovePipeline",
    "WanMovePipelineOutput",
    "build_scheduler",
    "reference_sigmas",
]

# wan/configs/shared_config.py `sample_neg_prompt`, with the prefix wan_move_14B.py puts before it (Chinese
# punctuation included).
DEFAULT_NEGATIVE_PROMPT = (
    "镜头晃动，色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"  # noqa: RUF001 (the reference's own text)
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"  # noqa: RUF001 (the reference's own text)
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"  # noqa: RUF001 (the reference's own text)
)
# The reference's command line samples 480p (832 x 480 or 480 x 832) with shift 3.0, other sizes with 5.0.
DEFAULT_SHIFT = 3.0
# Flow-matching UniPC as the reference's FlowUniPCMultistepScheduler (wan/utils/fm_solvers_unipc.py).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    solver_order=2,
    prediction_type="flow_prediction",
    use_flow_sigmas=True,
    flow_shift=DEFAULT_SHIFT,
    predict_x0=True,
    solver_type="bh2",
    lower_order_final=True,
    final_sigmas_type="zero",
)


def build_scheduler(shift: float = DEFAULT_SHIFT) -> UniPCMultistepScheduler:
    """The sampler of the reference: flow-matching UniPC (order 2, bh2) with `shift`."""
    return UniPCMultistepScheduler(**{**SCHEDULER_CONFIG, "flow_shift": shift})


def reference_sigmas(num_inference_steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """The unshifted sigmas the reference steps through: evenly from float32(1 - 1/1000) down to 0, last dropped.

    diffusers' own flow-sigma spacing (1 down to 1/1000) differs by up to 0.004 in sigma; with these sigmas
    its UniPC reproduces the reference's timesteps and steps exactly.
    """
    sigma_max = float(np.float32(1.0 - 1.0 / num_train_timesteps))
    return np.linspace(sigma_max, 0.0, num_inference_steps + 1)[:-1].copy()


@dataclass
class WanMovePipelineOutput(BaseOutput):
    """Result of a Wan-Move run.

    `frames`: per `output_type`, a list with one list of PIL frames ("pil"), a float array [1, F, H, W, 3]
    in [0, 1] ("np"), or the final latents [1, C, F', h, w] ("latent"). `None` when the run was interrupted.
    """

    frames: Any
    interrupted: bool = False


class WanMovePipeline(WanImageToVideoPipeline):
    """Wan 2.1 I2V 14B fine-tuned to move the picture along point tracks (Wan-Move, 832 x 480, 81 frames)."""

    # diffusers declares this a plain list.
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]  # noqa: RUF012

    def check_move_inputs(
        self,
        image: Any,
        prompt: Any,
        tracks: Any,
        visibility: Any,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate every input before any model runs.

        Returns the image as float [1, 3, H0, W0] in [-1, 1] at its own size, the tracks scaled from image
        pixels to output pixels (float32 [T, N, 2]) and the visibility (bool [T, N]).
        """
        if not isinstance(prompt, str):
            raise DasError(f"prompt must be a string, got {type(prompt).__name__}")
        if output_type not in ("pil", "np", "latent"):
            raise DasError(f"output_type is {output_type!r}; use 'pil', 'np' or 'latent'")
        if num_inference_steps < 1:
            raise DasError(f"num_inference_steps is {num_inference_steps}; it must be at least 1")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise DasError(
                f"callback tensor inputs {unknown} are not offered; choose from {self._callback_tensor_inputs}"
            )
        if num_frames < 1 or (num_frames - 1) % TEMPORAL_STRIDE:
            raise DasError(f"num_frames is {num_frames}; it must be {TEMPORAL_STRIDE}k + 1 (81 for Wan-Move)")
        multiple = self.vae_scale_factor_spatial * self.transformer.config.patch_size[1]
        if height % multiple or width % multiple:
            raise DasError(f"height x width is {height} x {width}; both must be multiples of {multiple}")
        if not self.scheduler.config.get("use_flow_sigmas"):
            raise DasError(
                "the scheduler is not flow-matching UniPC; build it with wan_move.pipeline.build_scheduler()"
            )

        image_tensor = _image_to_tensor(image)
        track_tensor, visible = _checked_tracks(tracks, visibility, num_frames)
        image_height, image_width = image_tensor.shape[-2:]
        scale = torch.tensor([width / image_width, height / image_height])
        return image_tensor, track_tensor * scale, visible

    def _get_t5_prompt_embeds(
        self,
        prompt: str | list[str] | None = None,
        num_videos_per_prompt: int = 1,
        max_sequence_length: int = 512,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """diffusers' UMT5 embedding (zero past each prompt's tokens), with the prompt cleaned without ftfy."""
        device = device or self._execution_device
        dtype = dtype or self.text_encoder.dtype
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        prompts = [_clean_prompt(text) for text in prompts]
        inputs = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        encoder_device = get_module_execution_device(self.text_encoder)
        hidden = self.text_encoder(
            inputs.input_ids.to(encoder_device), inputs.attention_mask.to(encoder_device)
        ).last_hidden_state
        hidden = hidden.to(dtype=dtype, device=device)
        lengths = inputs.attention_mask.gt(0).sum(dim=1).tolist()
        embeds = torch.zeros_like(hidden)
        for row, length in enumerate(lengths):
            embeds[row, :length] = hidden[row, :length]
        return embeds.repeat_interleave(num_videos_per_prompt, dim=0)

    def encode_reference_image(self, image: torch.Tensor) -> torch.Tensor:
        """CLIP features of `image` [1, 3, H0, W0] in [-1, 1] as the reference takes them (wan/modules/clip.py
        `visual`): the whole picture squashed to the encoder's input size, bicubic, no crop; the hidden
        states before the last block."""
        crop = self.image_processor.crop_size
        size = (crop["height"], crop["width"])
        pixels = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False) * 0.5 + 0.5
        mean = torch.tensor(self.image_processor.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_processor.image_std).view(1, 3, 1, 1)
        pixels = (pixels - mean) / std
        pixels = pixels.to(device=get_module_execution_device(self.image_encoder), dtype=self.image_encoder.dtype)
        hidden = self.image_encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        return hidden.to(self._execution_device)

    def prepare_move_conditions(
        self,
        image: torch.Tensor,
        tracks: torch.Tensor,
        visibility: torch.Tensor,
        num_frames: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        latents: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Initial noise, then the conditional and unconditional image conditions [1, 4 + C, F', h, w].

        The image is resized to the output size (bicubic, as the reference), encoded with [image, black
        frames], and the tracks edit the conditional copy in an order drawn from `generator` after the noise.
        """
        device = self._execution_device
        resized = F.interpolate(image.float(), size=(height, width), mode="bicubic", align_corners=False)
        latents, condition = self.prepare_latents(
            resized.to(device),
            1,
            self.vae.config.z_dim,
            height,
            width,
            num_frames,
            torch.float32,
            device,
            generator,
            latents,
        )
        mask_channels = condition.shape[1] - self.vae.config.z_dim
        mask, y = condition[:, :mask_channels], condition[:, mask_channels:]
        if generator is None:
            order = torch.randperm(tracks.shape[1])
        else:
            order = torch.randperm(tracks.shape[1], generator=generator, device=generator.device)
        y_cond = replace_track_features(y, tracks.to(device), visibility.to(device), order)
        return latents, torch.cat([mask, y_cond], dim=1), condition

    def encode_conditions(
        self, prompt: str, negative_prompt: str | None, image: torch.Tensor, max_sequence_length: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Prompt, negative prompt (None or "": the reference's) and CLIP image embeddings."""
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt,
            negative_prompt or DEFAULT_NEGATIVE_PROMPT,
            self.do_classifier_free_guidance,
            max_sequence_length=max_sequence_length,
        )
        return prompt_embeds, negative_prompt_embeds, self.encode_reference_image(image)

    def reference_timesteps(
        self, num_inference_steps: int, shift: float | None, device: torch.device
    ) -> UniPCMultistepScheduler:
        """The scheduler set to the reference's timesteps; a copy with `flow_shift=shift` unless `shift` is None."""
        scheduler = self.scheduler
        if shift is not None:
            scheduler = type(scheduler).from_config(scheduler.config, flow_shift=shift)
        scheduler.set_timesteps(sigmas=reference_sigmas(num_inference_steps), device=device)
        return scheduler

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | np.ndarray,
        prompt: str,
        tracks: np.ndarray | torch.Tensor,
        visibility: np.ndarray | torch.Tensor,
        negative_prompt: str | None = None,
        height: int = WAN_MOVE_WINDOW.height,
        width: int = WAN_MOVE_WINDOW.width,
        num_frames: int = WAN_MOVE_WINDOW.frames,
        num_inference_steps: int = 40,
        guidance_scale: float = 5.0,
        shift: float | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
        max_sequence_length: int = 512,
    ) -> WanMovePipelineOutput | tuple:
        """Generate `num_frames` frames that start at `image` and move along `tracks`.

        `image`: PIL image or uint8 [H0, W0, 3], any size (resized to `width` x `height`; pick a size with its
        aspect ratio). `tracks`: float [T, N, 2], (x, y) in pixels of `image`, one frame per output frame;
        `visibility`: bool [T, N]. `negative_prompt`: None or "" mean the reference's. `shift`: the flow shift
        (None: the scheduler's, 3.0 as the reference samples 480p). Seed `generator` on the execution device
        for the reference's noise.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs

        # 1. Check inputs before any heavy work.
        image_tensor, tracks, visibility = self.check_move_inputs(
            image,
            prompt,
            tracks,
            visibility,
            num_frames,
            height,
            width,
            num_inference_steps,
            output_type,
            list(callback_on_step_end_tensor_inputs),
        )
        self._guidance_scale, self._attention_kwargs = guidance_scale, attention_kwargs
        self._current_timestep, self._interrupt = None, False

        # 2. Text and image embeddings (the same CLIP features for both branches).
        prompt_embeds, negative_prompt_embeds, image_embeds = self.encode_conditions(
            prompt, negative_prompt, image_tensor, max_sequence_length
        )

        # 3. Timesteps: the reference's sigmas, shifted.
        scheduler = self.reference_timesteps(num_inference_steps, shift, self._execution_device)

        # 4. Noise, then the conditional and unconditional image conditions.
        latents, condition, uncondition = self.prepare_move_conditions(
            image_tensor, tracks, visibility, num_frames, height, width, generator, latents
        )

        # 5. Denoising loop.
        latents = self._denoise(
            scheduler,
            latents,
            (condition, prompt_embeds),
            (uncondition, negative_prompt_embeds),
            image_embeds,
            callback_on_step_end,
            list(callback_on_step_end_tensor_inputs),
        )

        # 6. Decode (skipped when interrupted).
        frames = None if self.interrupt else self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return WanMovePipelineOutput(frames=frames, interrupted=self.interrupt)

    def _denoise(
        self,
        scheduler: UniPCMultistepScheduler,
        latents: torch.Tensor,
        cond: tuple[torch.Tensor, torch.Tensor],
        uncond: tuple[torch.Tensor, torch.Tensor | None],
        image_embeds: torch.Tensor,
        callback_on_step_end: Callable[..., dict] | None,
        callback_tensor_inputs: list[str],
    ) -> torch.Tensor:
        """The one denoising loop: conditional then unconditional prediction per step, as the reference."""
        dtype = self.transformer.dtype
        image_embeds = image_embeds.to(dtype)
        (condition, prompt_embeds), (uncondition, negative_prompt_embeds) = cond, uncond
        timesteps = scheduler.timesteps
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    break
                self._current_timestep = t
                timestep = t.expand(latents.shape[0])
                noise_pred = self._predict(latents, condition, prompt_embeds, image_embeds, timestep, "cond")
                if self.do_classifier_free_guidance:
                    noise_uncond = self._predict(
                        latents, uncondition, negative_prompt_embeds, image_embeds, timestep, "uncond"
                    )
                    noise_pred = noise_uncond + self.guidance_scale * (noise_pred - noise_uncond)
                latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]

                if callback_on_step_end is not None:
                    offered = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    callback_kwargs = {name: offered[name] for name in callback_tensor_inputs}
                    outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = outputs.pop("latents", latents)
                    prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                progress_bar.update()
        self._current_timestep = None
        return latents

    def _predict(
        self,
        latents: torch.Tensor,
        condition: torch.Tensor,
        prompt_embeds: torch.Tensor,
        image_embeds: torch.Tensor,
        timestep: torch.Tensor,
        cache: str,
    ) -> torch.Tensor:
        """One transformer call on [latents, condition], as float32 (the reference guides in float32)."""
        dtype = self.transformer.dtype
        with self.transformer.cache_context(cache):
            prediction = self.transformer(
                hidden_states=torch.cat([latents, condition], dim=1).to(dtype),
                timestep=timestep,
                encoder_hidden_states=prompt_embeds.to(dtype),
                encoder_hidden_states_image=image_embeds,
                attention_kwargs=self.attention_kwargs,
                return_dict=False,
            )[0]
        return prediction.float()

    def _decode(self, latents: torch.Tensor, output_type: str) -> Any:
        """Final latents -> frames per `output_type` (diffusers' Wan de-normalisation and post-processing)."""
        if output_type == "latent":
            return latents
        config = self.vae.config
        latents = latents.to(device=get_module_execution_device(self.vae), dtype=self.vae.dtype)
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(latents)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(latents)
        video = self.vae.decode(latents * std + mean, return_dict=False)[0]
        return self.video_processor.postprocess_video(video, output_type=output_type)


def _clean_prompt(text: str) -> str:
    """The reference's prompt cleaning (html unescaped twice, whitespace collapsed), without ftfy's repair
    of mis-decoded text, which leaves well-formed text as it is."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


def _image_to_tensor(image: Any) -> torch.Tensor:
    """A PIL image or uint8 [H, W, 3] array as float [1, 3, H, W] in [-1, 1]."""
    if image is None:
        raise DasError("image is missing: give the first frame as a PIL image or uint8 [H, W, 3] array")
    if isinstance(image, PIL.Image.Image):
        array = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise DasError(f"image must be uint8 [H, W, 3], got {array.dtype} {array.shape}")
    else:
        raise DasError(f"image must be a PIL image or uint8 [H, W, 3] array, got {type(image).__name__}")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
    return (tensor * 2 - 1).unsqueeze(0)


def _checked_tracks(tracks: Any, visibility: Any, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracks as float32 [T, N, 2] and visibility as bool [T, N], checked against each other and the video."""
    track_tensor = torch.as_tensor(np.asarray(tracks) if not isinstance(tracks, torch.Tensor) else tracks)
    visible = torch.as_tensor(np.asarray(visibility) if not isinstance(visibility, torch.Tensor) else visibility)
    if track_tensor.ndim != 3 or track_tensor.shape[2] != 2 or not track_tensor.dtype.is_floating_point:
        raise DasError(
            f"tracks must be float [T, N, 2] (x, y in image pixels), got {track_tensor.dtype} "
            f"{tuple(track_tensor.shape)}; for the reference's [1, T, N, 2] files pass tracks[0]"
        )
    if tuple(visible.shape) != tuple(track_tensor.shape[:2]):
        raise DasError(
            f"visibility must be [T, N] = {tuple(track_tensor.shape[:2])} like the tracks, got {tuple(visible.shape)}"
        )
    if visible.dtype != torch.bool:
        if visible.dtype.is_floating_point or visible.min() < 0 or visible.max() > 1:
            raise DasError(f"visibility must be bool (or 0/1 integers), got {visible.dtype}")
        visible = visible.bool()
    if track_tensor.shape[0] != num_frames:
        raise DasError(
            f"tracks have {track_tensor.shape[0]} frames but the video has {num_frames}; give one track frame per "
            "video frame (resample them, or set num_frames to match)"
        )
    track_tensor = track_tensor.float()
    bad = visible & ~torch.isfinite(track_tensor).all(dim=-1)
    if bad.any():
        frame, point = (int(index) for index in bad.nonzero()[0])
        raise DasError(
            f"track {point} is visible at frame {frame} but its position is not finite (NaN or inf); "
            "mark such points invisible"
        )
    return track_tensor, visible
