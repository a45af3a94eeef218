"""A complete tiny Wan-Move pipeline built from configs in code, for tests and offline trials.

Same classes as the real model (UMT5 tokenizer and encoder, CLIP vision encoder and image processor,
Wan VAE with 4x temporal and 8x spatial compression, Wan I2V transformer with image embedding, flow UniPC),
at sizes where `TINY_NUM_FRAMES` frames of `TINY_WIDTH` x `TINY_HEIGHT` take a second on a CPU. No
downloads; the weights are random but fixed by the seed. `save_tiny_wan_move` writes the DiT in the
reference's ORIGINAL layout and the rest like the diffusers base, so loading and conversion run as for
the published weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from das_core.model.tiny import build_tiny_tokenizer, tiny_text_encoder_settings
from das_core.model.wan_move.convert import INDEX_NAME, original_key
from das_core.model.wan_move.pipeline import WanMovePipeline, build_scheduler

TINY_HEIGHT = 32
TINY_WIDTH = 48
TINY_NUM_FRAMES = 13  # 4 latent frames
TINY_TEXT_DIM = 32
TINY_IMAGE_DIM = 16
_HEADS, _HEAD_DIM = 2, 12


def build_tiny_transformer(seed: int = 0) -> WanTransformer3DModel:
    """A 2-block Wan I2V transformer (image embedding and added key/value projections like the 14B)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=_HEADS,
            attention_head_dim=_HEAD_DIM,
            in_channels=36,
            out_channels=16,
            text_dim=TINY_TEXT_DIM,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            image_dim=TINY_IMAGE_DIM,
            added_kv_proj_dim=_HEADS * _HEAD_DIM,
        )
        # Non-trivial norms and modulation, so a mixed-up name cannot hide behind a default of ones or zeros.
        for name, parameter in model.named_parameters():
            if "norm" in name or "scale_shift_table" in name:
                torch.nn.init.normal_(parameter, mean=1.0 if name.endswith("weight") else 0.0, std=0.2)
    return model.eval()


def build_tiny_pipeline(seed: int = 0) -> WanMovePipeline:
    """All components at tiny size, deterministic from `seed`, on the CPU in float32."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        tokenizer = build_tiny_tokenizer()
        text_encoder = UMT5EncoderModel(UMT5Config(**tiny_text_encoder_settings(tokenizer, TINY_TEXT_DIM))).eval()
        torch.manual_seed(seed + 2)
        image_encoder = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=TINY_IMAGE_DIM,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                patch_size=8,
            )
        ).eval()
        image_processor = CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32})
        torch.manual_seed(seed + 3)
        vae = AutoencoderKLWan(
            base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        ).eval()
    return WanMovePipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=build_scheduler(),
        image_processor=image_processor,
        image_encoder=image_encoder,
        transformer=build_tiny_transformer(seed),
    )


def save_original_layout(model: WanTransformer3DModel, folder: str | os.PathLike, shards: int = 2) -> Path:
    """Write `model` as the reference's `WanModel` saves itself: its config.json and original key names,
    in `shards` safetensors files with an index."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    heads = config.num_attention_heads
    original_config = {
        "_class_name": "WanModel",
        "model_type": "i2v",
        "text_len": 512,
        "in_dim": config.in_channels,
        "dim": heads * config.attention_head_dim,
        "ffn_dim": config.ffn_dim,
        "freq_dim": config.freq_dim,
        "out_dim": config.out_channels,
        "num_heads": heads,
        "num_layers": config.num_layers,
        "eps": config.eps,
    }
    (folder / "config.json").write_text(json.dumps(original_config, indent=2), encoding="utf-8")
    state = {original_key(name): tensor.contiguous() for name, tensor in model.state_dict().items()}
    names = sorted(state)
    weight_map = {}
    for index in range(shards):
        shard_name = f"diffusion_pytorch_model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: state[name] for name in names[index::shards]}
        save_file(part, folder / shard_name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard_name))
    index_json = {"metadata": {}, "weight_map": weight_map}
    (folder / INDEX_NAME).write_text(json.dumps(index_json, indent=2), encoding="utf-8")
    return folder


def save_tiny_wan_move(directory: str | os.PathLike, seed: int = 0) -> tuple[Path, Path]:
    """Write the tiny model as `directory/dit` (original layout) and `directory/base` (diffusers components).

    `load_wan_move_pipeline(dit, base_model=base)` then builds the same pipeline as `build_tiny_pipeline(seed)`.
    """
    directory = Path(directory)
    pipe = build_tiny_pipeline(seed)
    dit = save_original_layout(pipe.transformer, directory / "dit")
    base = directory / "base"
    for name in ("tokenizer", "text_encoder", "image_encoder", "image_processor", "vae"):
        getattr(pipe, name).save_pretrained(base / name)
    return dit, base
