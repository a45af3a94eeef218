"""A complete tiny DaS pipeline built from configs in code: tests, the demo and the server's `tiny` backend.

Same classes as the real model (T5 tokenizer and encoder, CogVideoX VAE with 4x temporal and 8x spatial
compression, tracking transformer with rotary and learned positional embeddings, DPM scheduler with
trailing spacing), small enough that 49 frames of `TINY_WIDTH` x `TINY_HEIGHT` suit CPU tests. No
downloads; the weights are random but fixed by the seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from das_core.model.pipeline import DasImageToVideoPipeline
from das_core.model.transformer import REFERENCE_CLASS_NAME, DasTransformer3DModel

# 3:2 like 720 x 480; the learned positional embeddings fix the tiny model to this size and 49 frames.
TINY_HEIGHT = 64
TINY_WIDTH = 96
TINY_NUM_FRAMES = 49
TINY_TEXT_DIM = 32

# The scheduler config of CogVideoX-5B-I2V, with the trailing spacing DaS samples with.
SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
}

# The model_index.json of the published checkpoint names the reference's own classes; ours does too, so
# the loader is tested against the same untrustworthy names.
REFERENCE_MODEL_INDEX = {
    "_class_name": "CogVideoXImageToVideoPipelineTracking",
    "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["cogvideox_tracking", REFERENCE_CLASS_NAME],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}

_WORDS = (
    "a an the of in on at to with and is are moving moves walking running flying rolling falling camera "
    "pan zoom slow fast red green blue white black yellow cube sphere ball box car person robot cat dog "
    "bird tree house street sky water light dark scene video high quality low resolution watermark "
    "present each frame background solid strange body trajectory distortion"
).split()


def build_tiny_tokenizer():
    """A T5 tokenizer over a small unigram vocabulary (the `tokenizers` library's Unigram model)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(f"\u2581{word}", -3.0) for word in _WORDS]
    vocab += [(letter, -6.0) for letter in "abcdefghijklmnopqrstuvwxyz0123456789.,"]
    vocab += [(f"\u2581{letter}", -5.0) for letter in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_transformer(seed: int = 0) -> DasTransformer3DModel:
    """A 3-block tracking transformer (2 copy blocks) whose tracking branch is live (random, not zero)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DasTransformer3DModel(
            num_tracking_blocks=2,
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=8,
            out_channels=4,
            time_embed_dim=16,
            text_embed_dim=TINY_TEXT_DIM,
            num_layers=3,
            sample_width=TINY_WIDTH // 8,
            sample_height=TINY_HEIGHT // 8,
            sample_frames=TINY_NUM_FRAMES,
            patch_size=2,
            max_text_seq_length=226,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        )
        # Zero linears would make the tracking video irrelevant; a trained checkpoint has non-zero ones.
        for linear in (model.initial_combine_linear, *model.combine_linears):
            torch.nn.init.normal_(linear.weight, std=0.2)
            torch.nn.init.normal_(linear.bias, std=0.02)
    return model.eval()


def tiny_text_encoder_settings(tokenizer, width: int) -> dict:
    """A one-layer T5-family encoder `width` wide over `tokenizer` (T5 for DaS, UMT5 for Wan-Move)."""
    return {
        "vocab_size": len(tokenizer),
        "d_model": width,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 1,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "feed_forward_proj": "gated-gelu",
        "dropout_rate": 0.0,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def build_tiny_pipeline(seed: int = 0) -> DasImageToVideoPipeline:
    """All five components at tiny size, deterministic from `seed`, on the CPU in float32."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import T5Config, T5EncoderModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        tokenizer = build_tiny_tokenizer()
        text_encoder = T5EncoderModel(T5Config(**tiny_text_encoder_settings(tokenizer, TINY_TEXT_DIM))).eval()
        torch.manual_seed(seed + 2)
        vae = AutoencoderKLCogVideoX(
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        ).eval()  # sample size stays 480 x 720: tiling starts above half of it, never at the tiny size
    transformer = build_tiny_transformer(seed)
    scheduler = CogVideoXDPMScheduler(**SCHEDULER_CONFIG)
    return DasImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def save_tiny_model(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny pipeline in the published layout, so `load_pipeline(directory)` can be exercised."""
    directory = Path(directory)
    pipe = build_tiny_pipeline(seed)
    pipe.save_pretrained(directory)
    index_path = directory / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index.update(REFERENCE_MODEL_INDEX)
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
    return directory
