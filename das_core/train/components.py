"""Load what training needs from a model folder and freeze all but the tracking branch.

The folder is a DaS checkpoint (its transformer has `num_tracking_blocks`) or plain CogVideoX-5B-I2V
(converted with `DasTransformer3DModel.from_base`: copy blocks start as the first main blocks, combine
linears at zero). Only the copy blocks and combine linears train (das_core/model/README.md, Tracking
branch); `freeze_to_tracking_branch` enforces and verifies it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from das_core.errors import DasError

# What training needs from a hub repo (DaS also ships its tracker, spatracker/, which training does not use).
_MODEL_FILES = [
    "model_index.json",
    *(f"{name}/*" for name in ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")),
]
TRAINABLE_PREFIXES = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")
PUBLISHED_TRACKING_BLOCKS = 18  # the published DaS model's, and the reference trainer's default


@dataclass
class Components:
    """The five model parts of a DaS pipeline, and the folder they came from."""

    folder: Path
    tokenizer: object
    text_encoder: nn.Module
    vae: nn.Module
    transformer: nn.Module
    scheduler: object


def load_components(
    model: str,
    *,
    num_tracking_blocks: int | None = None,
    dtype: torch.dtype = torch.float32,
    revision: str | None = None,
    variant: str | None = None,
    cache_dir: str | None = None,
) -> Components:
    """Load tokenizer, T5, VAE, scheduler and a DaS transformer (converted if the folder is plain CogVideoX).

    `num_tracking_blocks`: None takes a DaS checkpoint's own count (18 when converting plain CogVideoX);
    a number that contradicts the checkpoint is refused before any weights load.
    """
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import AutoTokenizer, T5EncoderModel

    from das_core.model import DasTransformer3DModel

    folder = _model_folder(model, revision, cache_dir)
    config = _transformer_config(Path(folder))
    num_tracking_blocks = _tracking_blocks(folder, config, num_tracking_blocks)
    hub = {"revision": revision, "cache_dir": cache_dir}
    tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer", **hub)
    text_encoder = T5EncoderModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype, variant=variant, **hub)
    vae = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, variant=variant, **hub)
    scheduler = CogVideoXDPMScheduler.from_pretrained(folder, subfolder="scheduler", **hub)

    if "num_tracking_blocks" in config:
        transformer = DasTransformer3DModel.from_pretrained(
            folder, subfolder="transformer", torch_dtype=dtype, variant=variant, **hub
        )
    else:
        base = CogVideoXTransformer3DModel.from_pretrained(
            folder, subfolder="transformer", torch_dtype=dtype, variant=variant, **hub
        )
        transformer = DasTransformer3DModel.from_base(base, num_tracking_blocks=num_tracking_blocks)
        del base
    return Components(Path(folder), tokenizer, text_encoder, vae, transformer, scheduler)


def _tracking_blocks(folder: Path, config: dict, requested: int | None) -> int:
    """How many tracking blocks to train: a DaS checkpoint's own, else `requested` or the published 18."""
    saved = config.get("num_tracking_blocks")
    if saved is not None:
        if requested is not None and requested != saved:
            raise DasError(
                f"{folder}: the DaS transformer has {saved} tracking blocks but --num_tracking_blocks is "
                f"{requested}; drop the flag to use the checkpoint's {saved}, or start from plain CogVideoX "
                "to train another count"
            )
        return saved
    count = PUBLISHED_TRACKING_BLOCKS if requested is None else requested
    if count > config["num_layers"]:
        raise DasError(
            f"--num_tracking_blocks {count} is more than the base model's {config['num_layers']} blocks; "
            f"pass --num_tracking_blocks {config['num_layers']} or fewer"
        )
    return count


def freeze_to_tracking_branch(transformer: nn.Module) -> list[str]:
    """Make only the copy blocks and combine linears trainable; return their parameter names.

    Raises `DasError` if the model has no tracking branch or anything else is left trainable, so a
    wrong model can never train (and so drift from) the frozen base weights.
    """
    transformer.requires_grad_(False)
    for name, parameter in transformer.named_parameters():
        if name.startswith(TRAINABLE_PREFIXES):
            parameter.requires_grad_(True)
    trainable = [name for name, parameter in transformer.named_parameters() if parameter.requires_grad]
    wrong = [name for name in trainable if not name.startswith(TRAINABLE_PREFIXES)]
    if wrong or not trainable:
        raise DasError(
            f"expected only the tracking branch to train, found {wrong[:3] or 'no tracking parameters'}; "
            "is this a DaS transformer?"
        )
    return trainable


def complete_model_folder(output_dir: Path, base: Path) -> None:
    """Make `output_dir` (holding the trained `transformer/`) a full model folder the pipeline loads.

    The frozen parts are linked from the base model folder (copied where links are impossible), so
    `load_pipeline(output_dir)` and `das infer --model_path OUTPUT_DIR` work without copying ~10 GB.
    """
    for name in ("scheduler", "text_encoder", "tokenizer", "vae"):
        target = output_dir / name
        if target.exists() or target.is_symlink():
            continue
        try:
            target.symlink_to((base / name).resolve(), target_is_directory=True)
        except OSError:  # no symlinks (some Windows setups, some filesystems)
            shutil.copytree(base / name, target)
    if (base / "model_index.json").is_file():
        shutil.copyfile(base / "model_index.json", output_dir / "model_index.json")


def _model_folder(model: str, revision: str | None, cache_dir: str | None) -> Path:
    """A local model folder: `model` itself, or the hub snapshot of that repo id (DaS or plain CogVideoX)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, revision=revision, cache_dir=cache_dir, allow_patterns=_MODEL_FILES))
    except Exception as error:
        raise DasError(
            f"{model}: not a local folder and not fetchable from the hub ({type(error).__name__}); "
            "download the model first and pass its folder to --pretrained_model_name_or_path"
        ) from error


def _transformer_config(folder: Path) -> dict:
    path = folder / "transformer" / "config.json"
    if not path.is_file():
        raise DasError(f"{folder}: no transformer/config.json; point --pretrained_model_name_or_path at a model folder")
    with open(path, encoding="utf-8") as file:
        return json.load(file)
