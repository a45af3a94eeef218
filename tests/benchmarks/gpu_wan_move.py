"""GPU benchmark of Wan-Move sampling at the real size, with random weights (no download).

Builds the full-size Wan 2.1 I2V 14B DiT on the meta device and materialises it with random bf16 weights
(on the GPU, or in CPU memory for group offload), then runs `WanMovePipeline`'s own denoising loop at
81 x 480 x 832 (conditional and unconditional call per step) in each memory mode of the loader
(`loading.apply_memory_mode`): none, none + fp8, model + fp8, group. Reports seconds per step, peak GPU
memory and the time to materialise (or, with --load-dir, to load and convert the saved DiT). The text,
CLIP and VAE parts are tiny: the DiT is what sets the step time and the memory of the loop.

    python tests/benchmarks/gpu_wan_move.py                       # needs CUDA (about 40 GB free for "none")
    python tests/benchmarks/gpu_wan_move.py --load-dir /tmp/wm    # also save the DiT (33 GB) and time loading
    python tests/benchmarks/gpu_wan_move.py --tiny                # CPU run of the same code path

Not collected by pytest (no test_ prefix). Append results to tests/benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass

import torch
from diffusers import WanTransformer3DModel

from das_core.model.wan_move.loading import apply_memory_mode, load_transformer
from das_core.model.wan_move.pipeline import WanMovePipeline
from das_core.model.wan_move.tiny import (
    TINY_HEIGHT,
    TINY_NUM_FRAMES,
    TINY_WIDTH,
    build_tiny_pipeline,
    build_tiny_transformer,
    save_original_layout,
)
from das_core.tracking.window import WAN_MOVE_WINDOW

# Wan 2.1 I2V 14B (the Wan-Move DiT): the published config.json in diffusers' names.
WAN_I2V_14B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=40,
    attention_head_dim=128,
    in_channels=36,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=13824,
    num_layers=40,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=1280,
    added_kv_proj_dim=5120,
)
MODES = {"none": ("none", False), "none-fp8": ("none", True), "model-fp8": ("model", True), "group": ("group", False)}
TEXT_TOKENS, IMAGE_TOKENS = 512, 257  # UMT5 sequence, CLIP ViT-H/14 tokens


@dataclass
class Result:
    mode: str
    steps: int
    step_s: float
    peak_gib: float
    build_s: float


def build_transformer(config: dict, device: str, dtype: torch.dtype, seed: int = 0) -> WanTransformer3DModel:
    """The DiT of `config` built on the meta device in `dtype`, then materialised on `device` with random weights
    (all of it in `dtype`, as `load_transformer` loads it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = WanTransformer3DModel(**config)
    finally:
        torch.set_default_dtype(previous)
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
        for buffer in model.buffers():  # rotary tables are computed in __init__, lost on the meta device
            buffer.zero_()
    model.rope = type(model.rope)(  # recompute the rotary frequencies on the real device
        model.config.attention_head_dim, model.config.patch_size, model.config.rope_max_seq_len
    ).to(device)
    return model.eval()


def measure(pipe: WanMovePipeline, mode: str, steps: int, size: tuple[int, int, int], device: str) -> Result:
    """`steps` steps of the pipeline's loop on random conditions; the mean of the steps after the first."""
    frames, height, width = size
    config = pipe.transformer.config
    latent_shape = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    generator = torch.Generator(device="cpu").manual_seed(0)
    latents = torch.randn(latent_shape, generator=generator).to(device)
    condition = torch.randn((1, 20, *latent_shape[2:]), generator=generator).to(device)
    text = torch.randn((1, TEXT_TOKENS, config.text_dim), generator=generator).to(device)
    image = torch.randn((1, IMAGE_TOKENS, config.image_dim), generator=generator).to(device)
    stamps: list[float] = []

    def stamp(_pipe, _i, _t, _kwargs):
        _sync(device)
        stamps.append(time.perf_counter())
        return {}

    pipe.set_progress_bar_config(disable=True)
    pipe._guidance_scale, pipe._attention_kwargs, pipe._interrupt = 5.0, None, False
    scheduler = pipe.reference_timesteps(steps, None, torch.device(device))
    _reset_peak(device)
    _sync(device)
    started = time.perf_counter()
    pipe._denoise(scheduler, latents, (condition, text), (condition, text), image, stamp, ["latents"])
    intervals = [later - earlier for earlier, later in zip([started, *stamps], stamps)]
    step_s = sum(intervals[1:]) / (len(intervals) - 1) if len(intervals) > 1 else intervals[0]
    return Result(mode, steps, step_s, _peak_gib(device), 0.0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def _reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny DiT on the CPU (float32), same code path")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per mode (default 3)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"memory modes (default {','.join(MODES)})")
    parser.add_argument("--load-dir", default=None, help="save the DiT here (original layout) and time loading it")
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    args = parser.parse_args(argv)

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        print(f"unknown modes {unknown}; choose from {', '.join(MODES)}", file=sys.stderr)
        return 2
    if args.tiny:
        device, dtype = "cpu", torch.float32
        config = {k: v for k, v in build_tiny_transformer().config.items() if not k.startswith("_")}
        size = (TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH)
        modes = [mode for mode in modes if MODES[mode][0] == "none" and not MODES[mode][1]]  # offload, fp8: GPU
    else:
        if not torch.cuda.is_available():
            print(
                "gpu_wan_move.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                "run with --tiny for a CPU run of the same code path",
                file=sys.stderr,
            )
            return 2
        device, dtype, config = "cuda", torch.bfloat16, WAN_I2V_14B
        size = (WAN_MOVE_WINDOW.frames, WAN_MOVE_WINDOW.height, WAN_MOVE_WINDOW.width)
    print(f"# {platform.node()} torch {torch.__version__} device={device} "
          f"{torch.cuda.get_device_name() if device == 'cuda' else platform.processor()}")  # fmt: skip

    parts = {name: module for name, module in build_tiny_pipeline(seed=0).components.items() if name != "transformer"}
    results: list[Result] = []
    extra: dict = {}
    for mode in modes:
        offload, fp8 = MODES[mode]
        _reset_peak(device)
        started = time.perf_counter()
        transformer = build_transformer(config, "cpu" if offload != "none" else device, dtype)
        pipe = WanMovePipeline(transformer=transformer, **parts)
        apply_memory_mode(pipe, torch.device(device), offload, fp8, dtype)
        _sync(device)
        build_s = time.perf_counter() - started
        result = measure(pipe, mode, args.steps, size, device)
        result.build_s = build_s
        results.append(result)
        print(json.dumps(asdict(result)))
        if args.load_dir and "load_s" not in extra:
            pipe.remove_all_hooks()
            extra["load_s"] = _time_load(pipe.transformer.to("cpu"), args.load_dir, dtype)
            print(f"load and convert the saved DiT: {extra['load_s']:.1f} s")
        pipe.remove_all_hooks()
        del pipe, transformer
        _reset_peak(device)

    print("\n| mode | steps | s/step | peak GiB | build s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.mode} | {r.steps} | {r.step_s:.3f} | {r.peak_gib:.1f} | {r.build_s:.1f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": [asdict(r) for r in results], **extra}, handle, indent=2)
    return 0


def _time_load(transformer: WanTransformer3DModel, directory: str, dtype: torch.dtype) -> float:
    """Save in the published (original) layout and time `load_transformer`, which converts at load."""
    save_original_layout(transformer, directory, shards=14)
    gc.collect()
    started = time.perf_counter()
    loaded = load_transformer(directory, dtype)
    seconds = time.perf_counter() - started
    del loaded
    return seconds


if __name__ == "__main__":
    sys.exit(main())
