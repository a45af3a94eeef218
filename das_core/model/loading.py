"""Load a DaS pipeline from the published checkpoint or a folder laid out like it.

The layout: das_core/model/README.md, Folder layout.

Every component is loaded with our classes, straight in the target dtype (the reference loads fp32 and
casts, which needs far more memory). The published `model_index.json` names the reference's own
modules, so it is never used to pick classes.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from das_core.errors import DasError

if TYPE_CHECKING:
    from das_core.model.pipeline import DasImageToVideoPipeline

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "EXCAI/Diffusion-As-Shader"
OFFLOAD_MODES = ("none", "model", "sequential")
COMPONENTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
_ALLOW_PATTERNS = ["model_index.json", *(f"{name}/*" for name in COMPONENTS)]
_WEIGHTED = ("text_encoder", "transformer", "vae")
# Room for activations, the CFG batch and tiled VAE decoding at 49 x 480 x 720 on top of the weights.
_ACTIVATION_MARGIN = {"none": 5 * 2**30, "model": 5 * 2**30, "sequential": 3 * 2**30}
_SAFETENSORS_FLOATS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def load_pipeline(
    model: str | os.PathLike = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.bfloat16,
    offload: str = "none",
    vae_tiling: bool = True,
    compile: bool = False,
) -> DasImageToVideoPipeline:
    """Build a ready `DasImageToVideoPipeline` from a hub id or a local folder.

    `offload`: "none" keeps everything on `device`; "model" moves one component at a time there (fits a
    24 GB card); "sequential" streams layers (slowest, least memory). `vae_tiling` turns on VAE slicing and
    tiling like the reference. `compile` wraps the transformer in `torch.compile`.
    """
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import T5EncoderModel, T5Tokenizer

    from das_core.model.pipeline import DasImageToVideoPipeline
    from das_core.model.transformer import DasTransformer3DModel

    if offload not in OFFLOAD_MODES:
        raise DasError(f"offload is {offload!r}; use one of {', '.join(OFFLOAD_MODES)}")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and offload != "none":
        raise DasError(f"--offload {offload} moves weights to an accelerator; on the CPU use --offload none")
    folder = resolve_model_folder(model)
    check_device_memory(folder, device, dtype, offload)

    started = time.perf_counter()
    tokenizer = T5Tokenizer.from_pretrained(folder, subfolder="tokenizer")
    text_encoder = T5EncoderModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype)
    vae = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder="vae", torch_dtype=dtype)
    transformer = DasTransformer3DModel.from_pretrained(folder, subfolder="transformer", torch_dtype=dtype)
    scheduler = CogVideoXDPMScheduler.from_pretrained(folder, subfolder="scheduler", timestep_spacing="trailing")
    pipe = DasImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    try:
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
    except torch.OutOfMemoryError as error:
        raise DasError(f"{device} ran out of memory loading the model; {_offload_advice(offload)}") from error
    if vae_tiling:
        pipe.vae.enable_slicing()
        pipe.vae.enable_tiling()
    if compile:
        pipe.transformer.compile()
    logger.info(
        "loaded %s on %s (%s, offload %s) in %.1f s", folder, device, dtype, offload, time.perf_counter() - started
    )
    return pipe


def resolve_model_folder(model: str | os.PathLike) -> Path:
    """A local folder with the published layout: `model` itself, or the hub snapshot of that repo id."""
    path = Path(model).expanduser()
    if path.is_dir():
        folder = path
    elif _looks_like_path(str(model)):
        raise DasError(f"model folder {path} does not exist; give a folder with the published layout or a hub id")
    else:
        folder = _download(str(model))
    _check_layout(folder)
    return folder


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or os.sep in model.replace("/", "")


def _download(repo_id: str) -> Path:
    """The cached snapshot of `repo_id`, downloading it if the network allows (about 25 GB for DaS)."""
    advice = (
        f"download it first with `hf download {repo_id} --local-dir ./weights/das` and pass the folder "
        "(`das infer --model_path ./weights/das`, `python -m das_server --model ./weights/das`), "
        "or try the pipeline offline on a tiny model made by `das tiny-model DIR`"
    )
    return hub_snapshot(repo_id, _ALLOW_PATTERNS, advice)


def hub_snapshot(repo_id: str, patterns: list[str], advice: str) -> Path:
    """The files of `repo_id` matching `patterns`: from the Hugging Face cache, else downloaded unless
    HF_HUB_OFFLINE is set; any failure is a `DasError` ending in `advice` (what to run instead)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise DasError(f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {advice}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as error:
        raise DasError(f"could not fetch {repo_id} ({type(error).__name__}); {advice}") from error


def _check_layout(folder: Path) -> None:
    missing = [name for name in ("model_index.json", *COMPONENTS) if not (folder / name).exists()]
    if missing:
        raise DasError(
            f"{folder} is not a DaS model folder: missing {', '.join(missing)}; it needs model_index.json, "
            "scheduler/, text_encoder/, tokenizer/, transformer/ and vae/ like EXCAI/Diffusion-As-Shader"
        )
    config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    if "num_tracking_blocks" not in config:
        raise DasError(
            f"{folder}/transformer is a plain CogVideoX transformer (no num_tracking_blocks); convert it with "
            "DasTransformer3DModel.from_base or use the DaS checkpoint EXCAI/Diffusion-As-Shader"
        )


def model_fixed_size(folder: Path) -> tuple[int, int] | None:
    """The one (height, width) the model in `folder` generates, read from its configs; None if any size works."""
    from das_core.model.pipeline import fixed_size

    transformer = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    # diffusers' CogVideoX pipelines: spatial compression = 2 ** (number of VAE blocks - 1)
    return fixed_size(transformer, 2 ** (len(vae["block_out_channels"]) - 1))


def component_weight_bytes(folder: Path, dtype: torch.dtype) -> dict[str, int]:
    """Bytes each weighted component takes in `dtype`, read from the safetensors headers (no weights loaded)."""
    element = torch.empty((), dtype=dtype).element_size()
    sizes = {}
    for name in _WEIGHTED:
        total = 0
        for shard in sorted((folder / name).glob("*.safetensors")):
            with open(shard, "rb") as handle:
                (header_size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(header_size))
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count * element if info["dtype"] in _SAFETENSORS_FLOATS else count
        sizes[name] = total
    return sizes


def required_device_bytes(sizes: dict[str, int], offload: str) -> int:
    """Device memory a mode needs: all weights, the largest component, or none, plus activations."""
    if offload == "none":
        weights = sum(sizes.values())
    elif offload == "model":
        weights = max(sizes.values(), default=0)
    else:
        weights = 0
    return weights + _ACTIVATION_MARGIN[offload]


def check_device_memory(folder: Path, device: torch.device, dtype: torch.dtype, offload: str) -> None:
    """Refuse, before loading anything, a CUDA device without room for the chosen offload mode."""
    if device.type != "cuda":
        return
    free, _ = torch.cuda.mem_get_info(device)
    needed = required_device_bytes(component_weight_bytes(folder, dtype), offload)
    if needed > free:
        raise DasError(
            f"{device} has {free / 2**30:.1f} GiB free but offload '{offload}' needs about "
            f"{needed / 2**30:.1f} GiB; {_offload_advice(offload)}"
        )


def _offload_advice(offload: str) -> str:
    if offload == "none":
        return "try --offload model (about 22 GB) or --offload sequential (slowest, least memory)"
    if offload == "model":
        return "try --offload sequential (slowest, least memory) or free the GPU"
    return "free the GPU (other processes hold its memory) or use a larger card"
