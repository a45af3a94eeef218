"""GPU benchmark of DaS sampling at the real size, with random weights (no download).

Builds the published configurations directly on the GPU in bf16 (DaS transformer: 42 + 18 blocks; T5-XXL
encoder; CogVideoX VAE) and runs 49 x 480 x 720 image-to-video with CFG. Reports seconds per denoising
step, VAE decode time and peak GPU memory for offload none / model / sequential, and the same numbers
for the base CogVideoX-5B-I2V transformer (42 blocks) in the same run. Targets (issue 3): DaS step within
1.45x of base; peak <= 40 GB with no offload, <= 24 GB with model offload and VAE tiling; local load < 60 s.

    python tests/benchmarks/gpu_das.py                     # needs CUDA
    python tests/benchmarks/gpu_das.py --load-dir /tmp/das # also save the random model and time loading
    python tests/benchmarks/gpu_das.py --tiny              # CPU smoke run of the same code path

Not collected by pytest (no test_ prefix). Append results to tests/benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from das_core.model.pipeline import DasImageToVideoPipeline
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH, build_tiny_pipeline, build_tiny_tokenizer
from das_core.model.transformer import COGVIDEOX_5B_I2V_CONFIG, DasTransformer3DModel

BASE_CONFIG = COGVIDEOX_5B_I2V_CONFIG  # DaS adds num_tracking_blocks=18
T5_XXL = dict(
    vocab_size=32128,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
)


@dataclass
class Result:
    model: str
    offload: str
    steps: int
    step_s: float
    decode_s: float
    peak_denoise_gib: float
    peak_total_gib: float


@contextlib.contextmanager
def _default(device: str, dtype: torch.dtype):
    """Create modules directly on `device` in `dtype` (no fp32 host copy)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_real_components(device: str, dtype: torch.dtype) -> dict:
    """Real-size T5-XXL encoder and CogVideoX VAE with random weights, created on `device`."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import T5Config, T5EncoderModel

    from das_core.model.tiny import SCHEDULER_CONFIG

    torch.manual_seed(0)
    with _default(device, dtype):
        text_encoder = T5EncoderModel(T5Config(**T5_XXL)).eval()
        vae = AutoencoderKLCogVideoX(scaling_factor=0.7).eval()
    return dict(
        tokenizer=build_tiny_tokenizer(),  # ids < 32128; the real spiece model is not needed for timing
        text_encoder=text_encoder,
        vae=vae,
        scheduler=CogVideoXDPMScheduler(**SCHEDULER_CONFIG),
    )


def build_real_transformer(das: bool, device: str, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(1)
    with _default(device, dtype):
        if das:
            return DasTransformer3DModel(num_tracking_blocks=18, **BASE_CONFIG).eval()
        return CogVideoXTransformer3DModel(**BASE_CONFIG).eval()


def build_tiny(das: bool) -> tuple[dict, torch.nn.Module]:
    from diffusers import CogVideoXTransformer3DModel

    pipe = build_tiny_pipeline(seed=0)
    components = dict(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, scheduler=pipe.scheduler)
    if das:
        return components, pipe.transformer
    config = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_") and k != "num_tracking_blocks"}
    return components, CogVideoXTransformer3DModel(**config).eval()


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


def measure(pipe, das: bool, offload: str, steps: int, height: int, width: int, device: str) -> Result:
    """One generation (latents), timed per step, then a timed VAE decode; peak memory of each part."""
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.vae.enable_slicing()
    pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    stamps: list[float] = []

    def stamp(_pipe, _i, _t, _kwargs):
        _sync(device)
        stamps.append(time.perf_counter())
        return {}

    kwargs = dict(
        height=height,
        width=width,
        num_frames=49,
        num_inference_steps=steps,
        guidance_scale=6.0,
        use_dynamic_cfg=True,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
        callback_on_step_end=stamp,
    )
    _reset_peak(device)
    _sync(device)
    started = time.perf_counter()
    with torch.no_grad():
        if das:
            tracking = rng.integers(0, 256, (49, height, width, 3), dtype=np.uint8)
            latents = pipe(image, "a red cube moving", tracking_video=tracking, **kwargs).frames
        else:
            from PIL import Image

            latents = pipe(image=Image.fromarray(image), prompt="a red cube moving", **kwargs).frames
    peak_denoise = _peak_gib(device)
    # Step 0 also holds prompt encoding, VAE encoding and warm-up; steady state is the later steps.
    intervals = np.diff([started, *stamps])
    step_s = float(np.mean(intervals[1:])) if len(intervals) > 1 else float(intervals[0])

    _sync(device)
    decode_start = time.perf_counter()
    with torch.no_grad():  # under offload, the VAE's decode hook moves it to the device as in the pipeline
        frames = pipe.decode_latents(latents.to(device))
    _sync(device)
    decode_s = time.perf_counter() - decode_start
    assert frames.shape[2] == 49, frames.shape
    result = Result(
        model="DaS" if das else "CogVideoX-5B-I2V",
        offload=offload,
        steps=steps,
        step_s=step_s,
        decode_s=decode_s,
        peak_denoise_gib=peak_denoise,
        peak_total_gib=_peak_gib(device),
    )
    pipe.remove_all_hooks()
    return result


def time_local_load(pipe, directory: str, device: str) -> float:
    """Save the random model in the published layout and time `load_pipeline` on it."""
    from das_core.model.loading import load_pipeline

    pipe.to("cpu")
    pipe.save_pretrained(directory, max_shard_size="5GB")
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    started = time.perf_counter()
    loaded = load_pipeline(directory, device=device, dtype=torch.bfloat16)
    _sync(device)
    seconds = time.perf_counter() - started
    del loaded
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run at the tiny size (float32)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per measurement (default 4)")
    parser.add_argument("--sequential-steps", type=int, default=2, help="steps for sequential offload (slow)")
    parser.add_argument("--modes", default="none,model,sequential", help="offload modes to measure")
    parser.add_argument("--skip-base", action="store_true", help="do not measure base CogVideoX-5B-I2V")
    parser.add_argument("--load-dir", default=None, help="also save the random DaS model here and time loading")
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    args = parser.parse_args(argv)

    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if args.tiny:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype, height, width = torch.float32, TINY_HEIGHT, TINY_WIDTH
        if device == "cpu":
            modes = [mode for mode in modes if mode == "none"]  # offload needs an accelerator
    else:
        if not torch.cuda.is_available():
            print(
                "gpu_das.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                "run with --tiny for a CPU smoke run of the same code path",
                file=sys.stderr,
            )
            return 2
        device, dtype, height, width = "cuda", torch.bfloat16, 480, 720

    print(f"# {platform.node()} {torch.__version__} device={device} "
          f"{torch.cuda.get_device_name() if device == 'cuda' else platform.processor()}")  # fmt: skip
    results: list[Result] = []
    extra: dict = {}
    shared = None
    if not args.tiny:
        started = time.perf_counter()
        shared = build_real_components(device, dtype)
        print(f"built T5 + VAE in {time.perf_counter() - started:.1f} s")

    for das in [False, True] if not args.skip_base else [True]:
        built = time.perf_counter()
        if args.tiny:
            components, transformer = build_tiny(das)
        else:
            components, transformer = shared, build_real_transformer(das, device, dtype)
        print(f"built {'DaS' if das else 'base'} transformer in {time.perf_counter() - built:.1f} s")
        if das:
            pipe = DasImageToVideoPipeline(transformer=transformer, **components)
        else:
            from diffusers import CogVideoXImageToVideoPipeline

            pipe = CogVideoXImageToVideoPipeline(transformer=transformer, **components)
        for mode in modes if das else ["none"]:
            steps = args.sequential_steps if mode == "sequential" else args.steps
            result = measure(pipe, das, mode, steps, height, width, device)
            results.append(result)
            print(json.dumps(asdict(result)))
        if das and args.load_dir:
            extra["load_s"] = time_local_load(pipe, args.load_dir, device)
            print(f"load_pipeline from {args.load_dir}: {extra['load_s']:.1f} s")
        if not args.tiny:
            pipe.to("cpu")  # keep the shared T5 and VAE for the next transformer
        del pipe, transformer
        _reset_peak(device)

    base = next((r for r in results if r.model != "DaS"), None)
    das_none = next((r for r in results if r.model == "DaS" and r.offload == "none"), None)
    print("\n| model | offload | steps | s/step | VAE decode s | peak denoise GiB | peak total GiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.model} | {r.offload} | {r.steps} | {r.step_s:.2f} | {r.decode_s:.2f} | "
              f"{r.peak_denoise_gib:.1f} | {r.peak_total_gib:.1f} |")  # fmt: skip
    if base and das_none:
        extra["das_over_base_step"] = das_none.step_s / base.step_s
        print(f"\nDaS / base step time: {extra['das_over_base_step']:.2f}x (target <= 1.45x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": [asdict(r) for r in results], **extra}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
