"""Checkpoint folders of a training run: `OUTPUT_DIR/checkpoint-<step>`, as the reference names them.

Naming, finding the latest, and pruning to `--checkpoints_total_limit` live here so the loop only
says when to save. Each checkpoint holds accelerate's state (optimizer, LR scheduler, RNG) plus the
transformer as a `transformer/` folder that `DasTransformer3DModel.from_pretrained` loads.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from das_core.errors import DasError

_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of optimizer step `step` goes."""
    return Path(output_dir) / f"checkpoint-{step}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoint folders in `output_dir`, oldest (lowest step) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [
        (int(match.group(1)), path) for path in root.iterdir() if path.is_dir() and (match := _NAME.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint folder was saved at (from its name)."""
    match = _NAME.match(Path(path).name)
    if not match:
        raise DasError(f"{path}: not a checkpoint folder (expected a name like checkpoint-500)")
    return int(match.group(1))


def resolve_resume(output_dir: str | Path, resume_from_checkpoint: str | None) -> Path | None:
    """The checkpoint to resume from: None to start fresh, 'latest' (None when there is none yet) or a name/path.

    Like the reference, 'latest' with no checkpoint starts a new run; a named checkpoint that does
    not exist is an error (a typo should not silently restart training).
    """
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        path = Path(output_dir) / path.name
    if not path.is_dir():
        raise DasError(f"--resume_from_checkpoint {resume_from_checkpoint}: no such checkpoint in {output_dir}")
    checkpoint_step(path)
    return path


def prune_checkpoints(output_dir: str | Path, total_limit: int | None) -> list[Path]:
    """Before saving a new checkpoint, delete the oldest so at most `total_limit` remain afterwards."""
    if total_limit is None:
        return []
    checkpoints = list_checkpoints(output_dir)
    excess = len(checkpoints) - total_limit + 1
    removed = checkpoints[: max(0, excess)]
    for path in removed:
        shutil.rmtree(path)
    return removed
