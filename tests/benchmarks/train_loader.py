"""Benchmark: dataset synthesis (one 49-frame 720 x 480 Workbench sample) and training-loader throughput.

1. Synthesis: `das_core.train.synth.synthesise` on the example scene `thrown_ball` at the real size
   (Blender renders 49 frames, the tracking video is rendered from the exported tracks, both MP4s
   written). Target (issue 7): under 30 s on this machine.
2. Loader: samples per second of `TrackingVideoDataset` + `BucketBatchSampler` through a torch
   DataLoader at 49 x 480 x 720 (decode two MP4s, sample frames, stack uint8), with 0 and 2 workers,
   against the rate one GPU consumes samples. That rate comes from the published recipe
   (das_core/model/README.md, Recipe): 2,000 steps x batch 2 x accumulation 4 x 8 GPUs = 128,000
   samples in about 3 days on 8 H800, so about 0.06 samples/s per GPU; the sampling cost in that
   README's Costs (about 2.5 s per 2-sample DaS forward on an H100) bounds a training step (forward +
   backward + checkpoint recompute, about 4 forwards) at about 0.2 samples/s per GPU at best.

    python tests/benchmarks/train_loader.py [--samples 8] [--keep DIR]

Not collected by pytest (no test_ prefix). Append results to tests/benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GPU_SAMPLES_PER_S_RECIPE = 128_000 / (3 * 24 * 3600) / 8
GPU_SAMPLES_PER_S_BOUND = 2 / (4 * 2.5)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def synth_one(root: Path) -> tuple[float, float]:
    """Wall and CPU seconds (this process + Blender) of one real-size Workbench sample."""
    from das_core.train.synth import SynthOptions, synthesise

    scenes = root / "scenes"
    scenes.mkdir(parents=True)
    blend = scenes / "thrown_ball.blend"
    subprocess.run(
        [sys.executable, str(REPO / "examples/scenes/thrown_ball.py"), str(blend)], check=True, capture_output=True
    )
    cpu0, child0 = time.process_time(), _children_cpu()
    start = time.perf_counter()
    synthesise([blend], root / "data", SynthOptions(), progress=False)
    wall = time.perf_counter() - start
    return wall, (time.process_time() - cpu0) + (_children_cpu() - child0)


def loader_rate(data: Path, samples: int, workers: int) -> float:
    """Samples per second through the training DataLoader (batch 1), after one warm-up batch."""
    import torch

    from das_core.train.dataset import BucketBatchSampler, TrackingVideoDataset, collate
    from das_core.train.layout import load_samples

    dataset = TrackingVideoDataset(
        load_samples(data), height_buckets=[480], width_buckets=[720], frame_buckets=[49], max_num_frames=49
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=BucketBatchSampler(dataset, 1), collate_fn=collate, num_workers=workers
    )
    iterator = iter(loader)
    batch = next(iterator)
    assert batch["videos"].shape == (1, 49, 3, 480, 720)
    start = time.perf_counter()
    count = sum(1 for _ in iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8, help="dataset entries for the loader run")
    parser.add_argument("--keep", type=Path, default=None, help="keep the synthesised dataset here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="das-train-bench-"))
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        wall, cpu = synth_one(root)
        print(f"synthesis, 1 sample 49 x 720 x 480 Workbench: {wall:.1f} s wall, {cpu:.1f} s CPU (target < 30 s)")
        data = root / "data"
        for name in ("prompt.txt", "videos.txt", "trackings.txt", "images.txt"):
            line = (data / name).read_text().splitlines()[0]
            (data / name).write_text((line + "\n") * args.samples)
        for workers in (0, 2):
            rate = loader_rate(data, args.samples, workers)
            print(
                f"loader, {workers} worker(s): {rate:.2f} samples/s = {rate / GPU_SAMPLES_PER_S_RECIPE:.0f}x the "
                f"recipe's {GPU_SAMPLES_PER_S_RECIPE:.3f} samples/s per GPU, {rate / GPU_SAMPLES_PER_S_BOUND:.1f}x "
                f"the {GPU_SAMPLES_PER_S_BOUND:.2f} samples/s bound"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.keep:
            shutil.copytree(data, args.keep)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
