"""The DaS tracking transformer: CogVideoX-5B-I2V plus a tracking branch (das_core/model/README.md).

Checkpoint-compatible with `EXCAI/Diffusion-As-Shader/transformer`: the parameter names are those of the
reference `CogVideoXTransformer3DModelTracking` (`transformer_blocks_copy`, `combine_linears`,
`initial_combine_linear`), so its shards load as they are.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock, CogVideoXTransformer3DModel
from diffusers.utils import apply_lora_scale
from torch import nn

from das_core.errors import DasError

# The class name the published checkpoint's config records; we write it too, so the reference code
# can load checkpoints we save.
REFERENCE_CLASS_NAME = "CogVideoXTransformer3DModelTracking"

# transformer/config.json of CogVideoX-5B-I2V (README.md, Base config): the base DaS starts from. The published DaS
# transformer is `DasTransformer3DModel(num_tracking_blocks=18, **COGVIDEOX_5B_I2V_CONFIG)`.
COGVIDEOX_5B_I2V_CONFIG = dict(
    num_attention_heads=48,
    attention_head_dim=64,
    in_channels=32,
    out_channels=16,
    text_embed_dim=4096,
    time_embed_dim=512,
    num_layers=42,
    sample_width=90,
    sample_height=60,
    sample_frames=49,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=226,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
    spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0,
    norm_eps=1e-5,
    attention_bias=True,
    flip_sin_to_cos=True,
    freq_shift=0,
    activation_fn="gelu-approximate",
    timestep_activation_fn="silu",
)


class DasTransformer3DModel(CogVideoXTransformer3DModel):
    """CogVideoX transformer that follows a 3D tracking video.

    Takes every argument of `CogVideoXTransformer3DModel` plus `num_tracking_blocks` (18 in the published
    checkpoint): that many copies of the first main blocks process the tracking tokens, and zero-initialised
    linears add their output into the main stream after each of the first `num_tracking_blocks` main blocks.
    """

    # diffusers declares this a plain list.
    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed"]  # noqa: RUF012

    @register_to_config
    def __init__(
        self,
        num_tracking_blocks: int = 18,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
    ):
        if not 0 <= num_tracking_blocks <= num_layers:
            raise DasError(
                f"num_tracking_blocks is {num_tracking_blocks} but must be between 0 and num_layers ({num_layers}); "
                "fix transformer/config.json"
            )
        super().__init__(
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            time_embed_dim=time_embed_dim,
            ofs_embed_dim=ofs_embed_dim,
            text_embed_dim=text_embed_dim,
            num_layers=num_layers,
            dropout=dropout,
            attention_bias=attention_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            activation_fn=activation_fn,
            timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
            patch_bias=patch_bias,
        )
        self._add_tracking_branch(num_tracking_blocks)

    def _add_tracking_branch(self, num_tracking_blocks: int) -> None:
        """Copy blocks shaped like the main blocks, then the combine linears, zeroed.

        The construction order decides which random numbers each module's initial weights take; keep it.
        """
        config = self.config
        inner_dim = config.num_attention_heads * config.attention_head_dim
        self.transformer_blocks_copy = nn.ModuleList(
            [
                CogVideoXBlock(
                    dim=inner_dim,
                    num_attention_heads=config.num_attention_heads,
                    attention_head_dim=config.attention_head_dim,
                    time_embed_dim=config.time_embed_dim,
                    dropout=config.dropout,
                    activation_fn=config.activation_fn,
                    attention_bias=config.attention_bias,
                    norm_elementwise_affine=config.norm_elementwise_affine,
                    norm_eps=config.norm_eps,
                )
                for _ in range(num_tracking_blocks)
            ]
        )
        self.combine_linears = nn.ModuleList([nn.Linear(inner_dim, inner_dim) for _ in range(num_tracking_blocks)])
        self.initial_combine_linear = nn.Linear(inner_dim, inner_dim)
        self.zero_combine_linears()

    def zero_combine_linears(self) -> None:
        """Zero the linears that join the tracking branch, so the model starts equal to the base model."""
        with torch.no_grad():
            for linear in (self.initial_combine_linear, *self.combine_linears):
                if linear.weight.device.type != "meta":
                    linear.weight.zero_()
                    linear.bias.zero_()

    def tracking_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters DaS trains (copy blocks and combine linears); the rest stays frozen."""
        yield from self.transformer_blocks_copy.parameters()
        yield from self.combine_linears.parameters()
        yield from self.initial_combine_linear.parameters()

    @classmethod
    def from_base(cls, base: CogVideoXTransformer3DModel, num_tracking_blocks: int = 18) -> DasTransformer3DModel:
        """Build a DaS transformer from a plain CogVideoX I2V one (README.md, Tracking branch).

        Main weights are taken over, copy block i starts as main block i, and the combine linears are zero,
        so the result computes exactly what `base` computes until it is trained. Built on the meta device
        first, so no second full-size copy of the weights is ever allocated.
        """
        from accelerate import init_empty_weights

        config = {key: value for key, value in base.config.items() if not key.startswith("_")}
        config.pop("num_tracking_blocks", None)
        with init_empty_weights():
            model = cls(num_tracking_blocks=num_tracking_blocks, **config)
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False, assign=True)
        branch = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")
        missing = [name for name in missing if not name.startswith(branch)]
        if unexpected or missing:
            raise DasError(
                f"the base transformer does not match its own config (unexpected {unexpected[:3]}, missing "
                f"{missing[:3]}); give a plain CogVideoX image-to-video transformer"
            )
        reference = base.proj_out.weight
        for i in range(num_tracking_blocks):
            model.transformer_blocks_copy[i] = copy.deepcopy(base.transformer_blocks[i])
        for linear in (model.initial_combine_linear, *model.combine_linears):
            linear.to_empty(device=reference.device)
            linear.to(reference.dtype)
        model.zero_combine_linears()
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save like diffusers does, with the reference class name in config.json (checkpoint compatibility)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        config_path = os.path.join(save_directory, self.config_name)
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["_class_name"] = REFERENCE_CLASS_NAME
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)

    def _run_block(
        self,
        block: CogVideoXBlock,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        emb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None,
        attention_kwargs: dict[str, Any] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(
                block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs
            )
        return block(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            temb=emb,
            image_rotary_emb=image_rotary_emb,
            attention_kwargs=attention_kwargs,
        )

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        tracking_maps: torch.Tensor | None,
        timestep: int | float | torch.LongTensor,
        timestep_cond: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> tuple[torch.Tensor] | Transformer2DModelOutput:
        """Predict the noise of `hidden_states` [B, F, C, H, W] following `tracking_maps` (same shape).

        `tracking_maps` holds the tracking-video latents concatenated with the tracking-image latents on the
        channel axis; `None` runs the plain CogVideoX model (the tracking branch is skipped).
        """
        if tracking_maps is None:
            return super().forward(
                hidden_states,
                encoder_hidden_states,
                timestep,
                timestep_cond=timestep_cond,
                image_rotary_emb=image_rotary_emb,
                attention_kwargs=attention_kwargs,
                return_dict=return_dict,
            )
        if tracking_maps.shape != hidden_states.shape:
            raise DasError(
                f"tracking_maps has shape {tuple(tracking_maps.shape)} but the video input has "
                f"{tuple(hidden_states.shape)}; encode the tracking video at the same size and frame count"
            )
        # The steps of das_core/model/README.md, Forward pass: 1 here, 2-4 tokens, 5 blocks, 6 output.
        emb = self.time_embedding(self.time_proj(timestep).to(dtype=hidden_states.dtype), timestep_cond)
        video, text, tracking = self._embed_tokens(hidden_states, encoder_hidden_states, tracking_maps)
        video = self._run_blocks(video, text, tracking, emb, image_rotary_emb, attention_kwargs)
        output = self._tokens_to_output(video, emb, hidden_states.shape)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    def _embed_tokens(
        self, hidden_states: torch.Tensor, prompt_embeds: torch.Tensor, tracking_maps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward steps 2-4: video, text and tracking tokens, the tracking ones already combined once.

        The main input and the tracking input go through the same patch embedding with the same text; only
        the tracking input's video tokens are kept.
        """
        text_seq_length = prompt_embeds.shape[1]
        embedded = self.embedding_dropout(self.patch_embed(prompt_embeds, hidden_states))
        text = embedded[:, :text_seq_length]
        video = embedded[:, text_seq_length:]
        tracking = self.embedding_dropout(self.patch_embed(prompt_embeds, tracking_maps))[:, text_seq_length:]
        tracking = self.initial_combine_linear(video + tracking)
        return video, text, tracking

    def _run_blocks(
        self,
        video: torch.Tensor,
        text: torch.Tensor,
        tracking: torch.Tensor,
        emb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None,
        attention_kwargs: dict[str, Any] | None,
    ) -> torch.Tensor:
        """Forward step 5: the main blocks; the first num_tracking_blocks each feed a copy block.

        Copy block i sees the text tokens as main block i left them; its combined output is added to the
        video tokens and is also what the next copy block takes.
        """
        for i, block in enumerate(self.transformer_blocks):
            video, text = self._run_block(block, video, text, emb, image_rotary_emb, attention_kwargs)
            if i < len(self.transformer_blocks_copy):
                tracking, _ = self._run_block(
                    self.transformer_blocks_copy[i], tracking, text, emb, image_rotary_emb, attention_kwargs
                )
                tracking = self.combine_linears[i](tracking)
                video = video + tracking
        return video

    def _tokens_to_output(self, video: torch.Tensor, emb: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Forward step 6: final norm, output projection and unpatchify, as the base model."""
        batch_size, num_frames, _, height, width = input_shape
        hidden_states = self.norm_final(video)
        hidden_states = self.norm_out(hidden_states, temb=emb)
        hidden_states = self.proj_out(hidden_states)
        p = self.config.patch_size
        p_t = self.config.patch_size_t
        if p_t is None:
            output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
            return output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        output = hidden_states.reshape(
            batch_size, (num_frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p
        )
        return output.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)
