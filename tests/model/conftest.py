"""Tiny real DaS components, built once per session (real diffusers/transformers classes, tiny configs)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH, build_tiny_pipeline, save_tiny_model


def assert_same_numbers(actual, expected, relative: float = 1e-5) -> None:
    """Two computations of the same tensor agree to float32 rounding, measured against the tensor's
    largest value: matrix products may add up in another order with another CPU or BLAS."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=relative * float(expected.abs().max()))


@pytest.fixture(scope="session")
def tiny_pipe():
    """The tiny pipeline (seed 0) on the CPU in float32; tests must not change its weights."""
    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny model saved in the published layout (seed 0, same weights as `tiny_pipe`)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-das") / "model", seed=0)


@pytest.fixture(scope="session")
def inputs():
    """A first frame and two different tracking videos at the tiny size, uint8."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (TINY_HEIGHT, TINY_WIDTH, 3), dtype=np.uint8)
    # A smooth moving gradient (like a tracking video) and its mirror image.
    ys, xs = np.mgrid[0:TINY_HEIGHT, 0:TINY_WIDTH]
    frames = []
    for t in range(49):
        red = (xs + 2 * t) % TINY_WIDTH * 255 // TINY_WIDTH
        green = ys * 255 // TINY_HEIGHT
        blue = np.full_like(xs, 128 + t)
        frames.append(np.stack([red, green, blue], axis=-1))
    tracking = np.asarray(frames, dtype=np.uint8)
    return {"image": image, "tracking": tracking, "other_tracking": tracking[:, :, ::-1].copy()}


@pytest.fixture(scope="session")
def run():
    """`run(pipe, inputs, seed=42, steps=2, tracking=..., **kwargs)`: one tiny run, np output by default.

    `tracking` defaults to `inputs["tracking"]`; pass None for no tracking video.
    """
    return _run


def _run(pipe, inputs, *, seed=42, steps=2, tracking=..., **kwargs):
    return pipe(
        inputs["image"],
        "a red cube moving",
        tracking_video=inputs["tracking"] if tracking is ... else tracking,
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(seed),
        output_type=kwargs.pop("output_type", "np"),
        **kwargs,
    )
