"""Two-process DDP training on the CPU (gloo), launched like a multi-GPU run: torchrun -m das_core.train.

`accelerate launch` starts the same torchrun workers on GPUs; here `ACCELERATE_USE_CPU=1` makes
accelerate build a CPU process group instead, so the DDP path (sharded batches, loss gather,
checkpoints with one RNG state per process, resume) runs for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH


def _torchrun(flags: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "das_core.train", *flags]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def four_samples(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    for name in ("prompt.txt", "videos.txt", "trackings.txt", "images.txt"):
        (root / name).write_text((root / name).read_text() * 4)
    return root


def test_two_process_ddp_run_checkpoints_and_resumes(tiny_model_dir, four_samples, tmp_path):
    output = tmp_path / "run"
    flags = (
        f"--pretrained_model_name_or_path {tiny_model_dir} --data_root {four_samples} --output_dir {output} "
        f"--num_tracking_blocks 2 --height_buckets {TINY_HEIGHT} --width_buckets {TINY_WIDTH} --frame_buckets 5 "
        "--max_num_frames 5 --train_batch_size 1 --checkpointing_steps 1 --checkpoints_total_limit 2 "
        "--lr_warmup_steps 0 --seed 0 --report_to none --gradient_checkpointing"
    ).split()
    first = _torchrun([*flags, "--max_train_steps", "3"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "batch 1 x 2 processes" in first.stdout
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert sorted(path.name for path in (output / "checkpoint-3").glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]

    second = _torchrun([*flags, "--max_train_steps", "4", "--resume_from_checkpoint", "latest"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stdout and "checkpoint-3" in second.stdout
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert (output / "transformer" / "config.json").is_file()
