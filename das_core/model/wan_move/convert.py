"""Read the Wan-Move DiT from its published folder (the reference's original Wan layout) as diffusers'
`WanTransformer3DModel`, and write it out in diffusers' layout.

The published folder holds `config.json` (the reference `WanModel`'s arguments: `dim`, `num_heads`, ...)
and `diffusion_pytorch_model*.safetensors` with original key names (`blocks.0.self_attn.q.weight`). The
names are mapped once, tensor by tensor, so converting never holds more than the model in its target
dtype plus one tensor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from das_core.errors import DasError

# What `WanModel` records in config.json (reference wan/modules/model.py: text_dim, patch_size, qk_norm,
# cross_attn_norm and window_size are left out there; the Wan 2.1 I2V values are fixed below).
ORIGINAL_CONFIG_KEYS = (
    "model_type",
    "in_dim",
    "dim",
    "ffn_dim",
    "freq_dim",
    "out_dim",
    "num_heads",
    "num_layers",
    "eps",
)
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"

# Original module name -> diffusers module name; the leaf ("weight", "bias") is kept.
_MODULES = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "head.head": "proj_out",
}
# The same inside `blocks.N.`. The reference block applies norm1, norm3 (before cross-attention, the only
# one with weights) and norm2 (before the FFN); diffusers numbers them in that order of use.
_BLOCK_MODULES = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    "norm3": "norm2",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
# Bare parameters (no leaf).
_PARAMETERS = {"head.modulation": "scale_shift_table"}
_BLOCK_PARAMETERS = {"modulation": "scale_shift_table"}


def diffusers_key(key: str) -> str:
    """The diffusers name of an original Wan parameter name; DasError for a name Wan 2.1 I2V does not have."""
    if key in _PARAMETERS:
        return _PARAMETERS[key]
    prefix, rest = "", key
    modules, parameters = _MODULES, _PARAMETERS
    parts = key.split(".", 2)
    if parts[0] == "blocks" and len(parts) == 3 and parts[1].isdigit():
        prefix, rest = f"blocks.{parts[1]}.", parts[2]
        modules, parameters = _BLOCK_MODULES, _BLOCK_PARAMETERS
    if rest in parameters:
        return prefix + parameters[rest]
    module, _, leaf = rest.rpartition(".")
    if module in modules and leaf in ("weight", "bias"):
        return f"{prefix}{modules[module]}.{leaf}"
    raise DasError(f"{key!r} is not a parameter of a Wan 2.1 image-to-video DiT; is this the Wan-Move checkpoint?")


def original_key(key: str) -> str:
    """The inverse of `diffusers_key` (writes checkpoints in the published layout, e.g. for tests)."""
    inverse_parameters = {new: old for old, new in _PARAMETERS.items()}
    if key in inverse_parameters:
        return inverse_parameters[key]
    prefix, rest = "", key
    modules = {new: old for old, new in _MODULES.items()}
    parameters = {}
    parts = key.split(".", 2)
    if parts[0] == "blocks" and len(parts) == 3:
        prefix, rest = f"blocks.{parts[1]}.", parts[2]
        modules = {new: old for old, new in _BLOCK_MODULES.items()}
        parameters = {new: old for old, new in _BLOCK_PARAMETERS.items()}
    if rest in parameters:
        return prefix + parameters[rest]
    module, _, leaf = rest.rpartition(".")
    if module not in modules:
        raise DasError(f"{key!r} has no counterpart in the original Wan layout")
    return f"{prefix}{modules[module]}.{leaf}"


def is_original_layout(folder: str | os.PathLike) -> bool:
    """True for a folder whose config.json is the reference `WanModel`'s (it has `dim`, not `num_attention_heads`)."""
    config_path = Path(folder) / "config.json"
    return config_path.is_file() and "dim" in json.loads(config_path.read_text(encoding="utf-8"))


def shard_paths(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files of a DiT folder: those its index names, or the single weights file."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        paths = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        paths = [folder / WEIGHTS_NAME]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise DasError(
            f"{folder} lacks {', '.join(missing)}: the download is incomplete; fetch the DiT with "
            "`hf download Ruihang/Wan-Move-14B-480P --local-dir weights/wan-move`"
        )
    return paths


def diffusers_config(folder: str | os.PathLike) -> dict:
    """`WanTransformer3DModel` arguments for an original-layout folder, from config.json and the weight shapes."""
    from safetensors import safe_open

    folder = Path(folder)
    original = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    missing = [key for key in ORIGINAL_CONFIG_KEYS if key not in original]
    if missing:
        raise DasError(f"{folder}/config.json lacks {', '.join(missing)}; it is not a Wan DiT config")
    if original["model_type"] != "i2v":
        raise DasError(f"{folder} holds a Wan {original['model_type']!r} DiT; Wan-Move is an 'i2v' one")
    # text_dim is not recorded and the image embedding width is fixed in the reference class: read both
    # from the weights.
    shapes = {}
    for path in shard_paths(folder):
        with safe_open(path, framework="pt") as handle:
            for key in ("text_embedding.0.weight", "img_emb.proj.0.weight"):
                if key in handle.keys():
                    shapes[key] = handle.get_slice(key).get_shape()
    if len(shapes) != 2:
        raise DasError(f"{folder} has no text or image embedding weights; it is not a Wan 2.1 I2V DiT")
    dim, heads = original["dim"], original["num_heads"]
    return dict(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=dim // heads,
        in_channels=original["in_dim"],
        out_channels=original["out_dim"],
        text_dim=shapes["text_embedding.0.weight"][1],
        freq_dim=original["freq_dim"],
        ffn_dim=original["ffn_dim"],
        num_layers=original["num_layers"],
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=original["eps"],
        image_dim=shapes["img_emb.proj.0.weight"][0],
        added_kv_proj_dim=dim,
    )


def load_original_transformer(folder: str | os.PathLike, dtype: torch.dtype = torch.bfloat16) -> WanTransformer3DModel:
    """Build `WanTransformer3DModel` from an original-layout folder, converting names once, in `dtype`.

    Like diffusers' `from_pretrained`, parameters under `_keep_in_fp32_modules` (norms, time embedding,
    modulation tables) stay float32.
    """
    from accelerate import init_empty_weights
    from safetensors import safe_open

    folder = Path(folder)
    with init_empty_weights():  # parameters on the meta device; the rotary buffers are real
        model = WanTransformer3DModel.from_config(diffusers_config(folder))
    keep_fp32 = set(model._keep_in_fp32_modules or ())
    state = {}
    for path in shard_paths(folder):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                name = diffusers_key(key)
                tensor = handle.get_tensor(key)
                keep = tensor.is_floating_point() and keep_fp32.intersection(name.split("."))
                state[name] = tensor.to(torch.float32 if keep else dtype)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise DasError(
            f"{folder} does not match a Wan 2.1 I2V DiT of its config: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; re-download it with `hf download Ruihang/Wan-Move-14B-480P --local-dir weights/wan-move`"
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def write_diffusers_transformer(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_size: str = "10GB",
) -> Path:
    """Convert an original-layout DiT folder to a diffusers `WanTransformer3DModel` folder; returns it."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise DasError(f"{destination} is not empty; choose a new folder for the converted DiT")
    model = load_original_transformer(source, dtype)
    model.save_pretrained(destination, max_shard_size=max_shard_size)
    return destination
