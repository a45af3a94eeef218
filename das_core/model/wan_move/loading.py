"""Load a Wan-Move pipeline: the DiT from the published folder (or a converted one), the rest from the base.

Wan-Move fine-tunes only the DiT of Wan 2.1 I2V 14B 480P; the VAE, UMT5 text encoder, CLIP image encoder,
tokenizer and image processor come from the diffusers base. Memory, from parameter counts (DiT 16.4 B
parameters: 33 GB in bf16, 17 GB stored as fp8; UMT5-XXL encoder 11 GB in bf16; CLIP and VAE 3 GB in
float32), activations of 81 x 832 x 480 on top:

| offload | fp8   | GPU memory                                  | card         |
|---------|-------|---------------------------------------------|--------------|
| "none"  | no    | everything resident, about 50 GB            | 80 GB        |
| "none"  | yes   | about 33 GB                                 | 40 GB / 48 GB|
| "model" | no    | the largest component, the DiT: about 36 GB | 40 GB        |
| "model" | yes   | the DiT as fp8: about 19 GB                 | 24 GB        |
| "group" | either| one DiT block at a time, a few GB           | 24 GB        |

"group" streams DiT and text-encoder blocks from pinned CPU memory (needs about 50 GB of RAM) and is the
slowest. These are estimates; measure on the card before relying on them.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from das_core.errors import DasError
from das_core.model.loading import hub_snapshot
from das_core.model.wan_move.convert import is_original_layout, load_original_transformer, shard_paths
from das_core.model.wan_move.pipeline import WanMovePipeline, build_scheduler

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Ruihang/Wan-Move-14B-480P"
DEFAULT_BASE_MODEL = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
OFFLOAD_MODES = ("none", "model", "group")
DOWNLOAD_COMMAND = f"hf download {DEFAULT_MODEL} --local-dir weights/wan-move"
BASE_DOWNLOAD_COMMAND = f'hf download {DEFAULT_BASE_MODEL} --exclude "transformer/*" --local-dir weights/wan-base'
# Only the DiT of the published folder is used (it also holds the reference's .pth encoders).
_DIT_PATTERNS = ["config.json", "diffusion_pytorch_model*"]


def load_wan_move_pipeline(
    model: str | os.PathLike = DEFAULT_MODEL,
    base_model: str | os.PathLike = DEFAULT_BASE_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.bfloat16,
    offload: str = "none",
    fp8: bool = False,
) -> WanMovePipeline:
    """Build a ready `WanMovePipeline`.

    `model`: the Wan-Move DiT, a hub id or a folder in the published (original Wan) layout, converted at
    load, or in diffusers' layout (`write_diffusers_transformer` makes one). `base_model`: hub id or folder
    of a diffusers Wan 2.1 I2V pipeline for everything else. `dtype` is the DiT's and text encoder's; the
    VAE and CLIP encoder run in float32. `offload`: "none", "model" (one component at a time on `device`)
    or "group" (DiT and text encoder streamed block by block). `fp8` stores the DiT weights as float8 and
    computes in `dtype`. See the module docstring for which card each choice fits.
    """
    if offload not in OFFLOAD_MODES:
        raise DasError(f"offload is {offload!r}; use one of {', '.join(OFFLOAD_MODES)}")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and offload == "model":
        raise DasError("offload 'model' moves weights to an accelerator; on the CPU use offload 'none'")

    started = time.perf_counter()
    transformer = load_transformer(resolve_dit_folder(model), dtype)
    pipe = WanMovePipeline(
        transformer=transformer, scheduler=build_scheduler(), **load_base_components(base_model, dtype)
    )
    apply_memory_mode(pipe, device, offload, fp8, dtype)
    logger.info(
        "loaded Wan-Move %s on %s (%s, offload %s, fp8 %s) in %.1f s",
        model,
        device,
        dtype,
        offload,
        fp8,
        time.perf_counter() - started,
    )
    return pipe


def apply_memory_mode(
    pipe: WanMovePipeline, device: torch.device, offload: str, fp8: bool, dtype: torch.dtype = torch.bfloat16
) -> None:
    """Place `pipe` on `device` per `offload` ("none", "model", "group"), the DiT stored as float8 with `fp8`."""
    if fp8:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    try:
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "group":
            pipe.enable_group_offload(
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=device.type == "cuda",
                exclude_modules=["vae", "image_encoder"],
            )
        else:
            pipe.to(device)
    except torch.OutOfMemoryError as error:
        raise DasError(
            f"{device} ran out of memory loading Wan-Move with offload {offload!r}; try offload 'model' with fp8 "
            "(24 GB) or offload 'group'"
        ) from error


def resolve_dit_folder(model: str | os.PathLike) -> Path:
    """A local DiT folder: `model` itself, or the hub snapshot of that repo id (downloaded if allowed)."""
    path = Path(model).expanduser()
    if path.is_dir():
        folder = path
    elif str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise DasError(f"Wan-Move DiT folder {path} does not exist; download it with `{DOWNLOAD_COMMAND}`")
    else:
        folder = _snapshot(str(model))
    if not (folder / "config.json").is_file():
        raise DasError(
            f"{folder} has no config.json; it is not a Wan-Move DiT folder. Get one with `{DOWNLOAD_COMMAND}`"
        )
    shard_paths(folder)
    return folder


def _snapshot(repo_id: str) -> Path:
    """The cached snapshot of the DiT files of `repo_id`, downloading them if the network allows."""
    return hub_snapshot(repo_id, _DIT_PATTERNS, f"download it first with `{DOWNLOAD_COMMAND}` and pass that folder")


def load_transformer(folder: str | os.PathLike, dtype: torch.dtype = torch.bfloat16) -> WanTransformer3DModel:
    """The DiT of `folder`: converted from the original Wan layout, or loaded as it is from diffusers' layout."""
    if is_original_layout(folder):
        return load_original_transformer(folder, dtype)
    return WanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype).eval()


def load_base_components(base_model: str | os.PathLike, dtype: torch.dtype = torch.bfloat16) -> dict:
    """Tokenizer, text encoder (`dtype`), CLIP image encoder and processor, and VAE (float32) of the base."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

    try:
        return dict(
            tokenizer=AutoTokenizer.from_pretrained(base_model, subfolder="tokenizer"),
            text_encoder=UMT5EncoderModel.from_pretrained(base_model, subfolder="text_encoder", dtype=dtype).eval(),
            image_encoder=CLIPVisionModel.from_pretrained(
                base_model, subfolder="image_encoder", dtype=torch.float32
            ).eval(),
            image_processor=CLIPImageProcessor.from_pretrained(base_model, subfolder="image_processor"),
            vae=AutoencoderKLWan.from_pretrained(base_model, subfolder="vae", torch_dtype=torch.float32).eval(),
        )
    except (OSError, ValueError) as error:
        raise DasError(
            f"could not load the Wan 2.1 I2V base components from {base_model} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); get them with `{BASE_DOWNLOAD_COMMAND}` and pass "
            "base_model=weights/wan-base"
        ) from error
