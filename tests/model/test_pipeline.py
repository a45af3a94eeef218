"""DasImageToVideoPipeline on the tiny model: end to end, determinism, RNG order, CFG, interrupt, bad inputs."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffusers import CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

from das_core.errors import DasError
from das_core.model.pipeline import DEFAULT_NEGATIVE_PROMPT, dynamic_guidance_scale
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH
from tests.model.conftest import assert_same_numbers


def test_end_to_end_gives_49_frames_in_unit_range(run, tiny_pipe, inputs):
    out = run(tiny_pipe, inputs)
    assert not out.interrupted
    assert out.frames.shape == (1, 49, TINY_HEIGHT, TINY_WIDTH, 3)
    assert out.frames.dtype == np.float32
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    assert out.frames.std() > 0.01  # not a constant picture


def test_pil_output_and_latent_output(run, tiny_pipe, inputs):
    pil = run(tiny_pipe, inputs, steps=1, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 49 and pil[0][0].size == (TINY_WIDTH, TINY_HEIGHT)
    latents = run(tiny_pipe, inputs, steps=1, output_type="latent").frames
    assert latents.shape == (1, 13, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8)


def test_same_seed_same_frames_other_tracking_other_frames(run, tiny_pipe, inputs):
    # Latents: decoding is deterministic, and skipping it keeps the test fast.
    results = []
    for seed, tracking in ((42, ...), (42, ...), (42, inputs["other_tracking"]), (43, ...)):
        torch.manual_seed(0)  # the tracking-video posterior sample uses the global RNG, like the reference
        results.append(run(tiny_pipe, inputs, seed=seed, tracking=tracking, output_type="latent").frames)
    first, again, other, other_seed = results
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3
    assert (first - other_seed).abs().mean() > 1e-3


def test_float_tracking_video_equals_uint8(run, tiny_pipe, inputs):
    as_float = torch.from_numpy(inputs["tracking"]).permute(0, 3, 1, 2).float() / 255.0
    torch.manual_seed(0)
    a = run(tiny_pipe, inputs, steps=1, output_type="latent").frames
    torch.manual_seed(0)
    b = run(tiny_pipe, inputs, steps=1, output_type="latent", tracking=as_float).frames
    assert_same_numbers(a, b)


def _capture_first_call(pipe):
    """Record the first transformer call's keyword inputs; returns (store, remove)."""
    store = {}

    def hook(module, args, kwargs):
        store.setdefault("kwargs", {k: v for k, v in kwargs.items()})

    handle = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    return store, handle.remove


def test_random_number_order_matches_the_reference(tiny_pipe, inputs):
    """das_core/model/README.md, Sampling, re-implemented step by step: global RNG for the tracking video,
    then with the generator: image posterior, initial noise, tracking-image posterior (its noise draw
    discarded)."""
    pipe = tiny_pipe
    vae, scale = pipe.vae, pipe.vae.config.scaling_factor
    tracking = torch.from_numpy(inputs["tracking"]).permute(0, 3, 1, 2).float() / 255.0  # [T, 3, H, W], [0, 1]
    image = torch.from_numpy(inputs["image"]).permute(2, 0, 1).float()[None] / 255.0 * 2 - 1  # [1, 3, H, W]
    tracking_image = tracking[:1] * 2 - 1
    shape = (1, 13, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8)

    with torch.no_grad():
        torch.manual_seed(123)
        track_lat = vae.encode(tracking.unsqueeze(0).permute(0, 2, 1, 3, 4)).latent_dist.sample() * scale
        track_lat = track_lat.permute(0, 2, 1, 3, 4)
        gen = torch.Generator().manual_seed(42)
        image_lat = vae.encode(image.unsqueeze(2)).latent_dist.sample(gen).permute(0, 2, 1, 3, 4) * scale
        noise = torch.randn(shape, generator=gen)
        track_image_lat = vae.encode(tracking_image.unsqueeze(2)).latent_dist.sample(gen).permute(0, 2, 1, 3, 4) * scale
        torch.randn(shape, generator=gen)  # the discarded noise draw of the second call
        after = torch.randn(4, generator=gen)  # what the generator gives next (the scheduler's first draw)
    pad = torch.zeros(1, 12, *shape[2:])
    image_lat = torch.cat([image_lat, pad], dim=1)
    track_image_lat = torch.cat([track_image_lat, pad], dim=1)

    store, remove = _capture_first_call(pipe)
    generator = torch.Generator().manual_seed(42)
    torch.manual_seed(123)
    try:
        pipe(
            inputs["image"],
            "a red cube moving",
            tracking_video=inputs["tracking"],
            height=TINY_HEIGHT,
            width=TINY_WIDTH,
            num_inference_steps=1,
            generator=generator,
            output_type="latent",
        )
    finally:
        remove()
    kwargs = store["kwargs"]
    hidden, tracking_maps = kwargs["hidden_states"], kwargs["tracking_maps"]
    assert hidden.shape == (2, 13, 8, *shape[3:]) and tracking_maps.shape == hidden.shape
    for half in range(2):  # CFG layout: both halves carry the same latents
        torch.testing.assert_close(hidden[half, :, :4], noise[0] * pipe.scheduler.init_noise_sigma, rtol=0, atol=0)
        torch.testing.assert_close(hidden[half, :, 4:], image_lat[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tracking_maps[half, :, :4], track_lat[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tracking_maps[half, :, 4:], track_image_lat[0], rtol=1e-5, atol=1e-5)
    # Prompt layout: [negative, positive].
    neg, pos = pipe.encode_prompt("a red cube moving", DEFAULT_NEGATIVE_PROMPT, device="cpu")[::-1]
    torch.testing.assert_close(kwargs["encoder_hidden_states"], torch.cat([neg, pos]), rtol=1e-4, atol=1e-4)
    # The one DPM step drew from the same generator afterwards: replay it to line the generators up.
    replay = torch.Generator().manual_seed(42)
    with torch.no_grad():
        vae.encode(image.unsqueeze(2)).latent_dist.sample(replay)
        torch.randn(shape, generator=replay)
        vae.encode(tracking_image.unsqueeze(2)).latent_dist.sample(replay)
        torch.randn(shape, generator=replay)
    assert torch.equal(torch.randn(4, generator=replay), after)
    assert not torch.equal(generator.get_state(), torch.Generator().manual_seed(42).get_state())


def test_without_tracking_it_equals_diffusers_cogvideox_i2v(tiny_pipe, inputs):
    """CFG layout, dynamic CFG, DPM stepping and latent prep: identical to diffusers' own I2V pipeline
    with a plain transformer holding the same main weights."""
    das = tiny_pipe.transformer
    config = {k: v for k, v in das.config.items() if not k.startswith("_") and k != "num_tracking_blocks"}
    base = CogVideoXTransformer3DModel(**config).eval()
    base.load_state_dict(das.state_dict(), strict=False)
    reference = CogVideoXImageToVideoPipeline(
        tokenizer=tiny_pipe.tokenizer,
        text_encoder=tiny_pipe.text_encoder,
        vae=tiny_pipe.vae,
        transformer=base,
        scheduler=tiny_pipe.scheduler,
    )
    reference.set_progress_bar_config(disable=True)
    from PIL import Image

    expected = reference(
        image=Image.fromarray(inputs["image"]),
        prompt="a red cube moving",
        negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_frames=49,
        num_inference_steps=3,
        guidance_scale=6.0,
        use_dynamic_cfg=True,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
    ).frames
    got = tiny_pipe(
        inputs["image"],
        "a red cube moving",
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
    ).frames
    assert_same_numbers(got, expected)


def test_dynamic_cfg_value_and_timestep_state(run, tiny_pipe, inputs, monkeypatch):
    seen, contexts = [], []

    def callback(pipe, i, t, kwargs):
        seen.append((int(t), pipe.guidance_scale, pipe._current_timestep))
        return {}

    real_context = tiny_pipe.transformer.cache_context

    @contextlib.contextmanager
    def recording_context(name):
        contexts.append(name)
        with real_context(name):
            yield

    monkeypatch.setattr(tiny_pipe.transformer, "cache_context", recording_context)
    run(tiny_pipe, inputs, steps=4, guidance_scale=6.0, output_type="latent", callback_on_step_end=callback)
    assert contexts == ["cond_uncond"] * 4
    timesteps = [t for t, _, _ in seen]
    assert timesteps == sorted(timesteps, reverse=True) and timesteps[0] == 999  # trailing spacing
    for t, scale, current in seen:
        assert scale == pytest.approx(1 + 6.0 * (1 - math.cos(math.pi * ((4 - t) / 4) ** 5)) / 2)
        assert int(current) == t
    assert tiny_pipe._current_timestep is None
    assert dynamic_guidance_scale(6.0, 0, 50) == pytest.approx(1 + 6.0 * (1 - math.cos(math.pi)) / 2)


def test_static_cfg_keeps_the_scale(run, tiny_pipe, inputs):
    scales = []
    run(
        tiny_pipe,
        inputs,
        steps=2,
        use_dynamic_cfg=False,
        guidance_scale=4.5,
        output_type="latent",
        callback_on_step_end=lambda p, i, t, kw: scales.append(p.guidance_scale) or {},
    )
    assert scales == [4.5, 4.5]


def test_interrupt_stops_within_one_step(run, tiny_pipe, inputs):
    calls = []
    handle = tiny_pipe.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    decoded = []
    vae_decode = tiny_pipe.vae.decode

    def stop(pipe, i, t, kwargs):
        pipe._interrupt = True
        return {}

    try:
        tiny_pipe.vae.decode = lambda *a, **k: decoded.append(1) or vae_decode(*a, **k)
        out = run(tiny_pipe, inputs, steps=5, callback_on_step_end=stop)
    finally:
        handle.remove()
        del tiny_pipe.vae.decode
    assert len(calls) == 1
    assert out.interrupted and out.frames is None
    assert decoded == []


def test_callback_can_replace_latents(run, tiny_pipe, inputs):
    def zero(pipe, i, t, kwargs):
        return {"latents": torch.zeros_like(kwargs["latents"])}

    out = run(tiny_pipe, inputs, steps=2, output_type="latent", callback_on_step_end=zero)
    assert not out.frames.any()


def test_training_normalization_feeds_minus_one_to_one(run, tiny_pipe, inputs):
    seen = {}
    encode = tiny_pipe.vae.encode

    def recording(x, *args, **kwargs):
        if x.shape[2] == 49:
            seen.setdefault("range", []).append((float(x.min()), float(x.max())))
        return encode(x, *args, **kwargs)

    tiny_pipe.vae.encode = recording
    try:
        black = np.zeros_like(inputs["tracking"])
        black[..., 0] = 255
        for mode in ("reference", "training"):
            run(tiny_pipe, inputs, steps=1, output_type="latent", tracking=black, tracking_normalization=mode)
    finally:
        del tiny_pipe.vae.encode
    assert seen["range"] == [(0.0, 1.0), (-1.0, 1.0)]


def test_tracking_latents_input_equals_encoding_inside(run, tiny_pipe, inputs):
    frames = torch.from_numpy(inputs["tracking"]).permute(0, 3, 1, 2).float() / 255.0
    torch.manual_seed(5)
    with torch.no_grad():
        latents = tiny_pipe.encode_tracking_video(frames, "reference")
    a = run(
        tiny_pipe,
        inputs,
        steps=1,
        output_type="latent",
        tracking=None,
        tracking_latents=latents,
        tracking_image=inputs["tracking"][0],
    )
    torch.manual_seed(5)
    b = run(tiny_pipe, inputs, steps=1, output_type="latent")
    assert_same_numbers(a.frames, b.frames)


BAD_INPUTS = {
    "wrong frame count": (dict(tracking_video="short"), "has 20 frames but 49"),
    "wrong size": (dict(tracking_video="small"), "tracking_video is 48 x 32"),
    "wrong dtype": (dict(tracking_video="int16"), "got dtype torch.int16"),
    "float out of range": (dict(tracking_video="float255"), r"must be in \[0, 1\]"),
    "empty video": (dict(tracking_video="empty"), "empty"),
    "missing image": (dict(image=None), "image is missing"),
    "image of another size": (dict(image="small"), "image is 48 x 32"),
    "image given as a video": (dict(image="video"), "holds 49 frames"),
    "latents without image": (dict(tracking_video=None, tracking_latents="ok"), "need a tracking_image"),
    "latents of another shape": (dict(tracking_video=None, tracking_latents="bad", tracking_image="ok"), "shape"),
    "both tracking inputs": (dict(tracking_latents="ok"), "not both"),
    "tracking image alone": (dict(tracking_video=None, tracking_image="ok"), "without tracking_video"),
    "tracking image given as a video": (
        dict(tracking_video=None, tracking_latents="ok", tracking_image="video"),
        "tracking_image holds 49 frames",
    ),
    "frames not 4k+1": (dict(num_frames=48), "4k \\+ 1"),
    "other size than the model's": (dict(height=128, width=192), "generates 96 x 64 video only"),
    "unknown normalization": (dict(tracking_normalization="foo"), "tracking_normalization"),
    "prompt not a string": (dict(prompt=["a", "b"]), "prompt must be a string"),
}


def _materialise(name, value, inputs):
    tracking, image = inputs["tracking"], inputs["image"]
    latent = torch.zeros(1, 13, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8)
    table = {
        ("tracking_video", "short"): tracking[:20],
        ("tracking_video", "small"): tracking[:, :32, :48],
        ("tracking_video", "int16"): tracking.astype(np.int16),
        ("tracking_video", "float255"): torch.from_numpy(tracking).permute(0, 3, 1, 2).float(),
        ("tracking_video", "empty"): tracking[:0],
        ("image", "small"): image[:32, :48],
        ("image", "video"): tracking,
        ("tracking_latents", "ok"): latent,
        ("tracking_latents", "bad"): latent[:, :5],
        ("tracking_image", "ok"): tracking[0],
        ("tracking_image", "video"): torch.from_numpy(tracking).permute(0, 3, 1, 2).float() / 255,
    }
    return table.get((name, value) if isinstance(value, str) else None, value)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_refused_before_any_model_runs(tiny_pipe, inputs, case):
    overrides, message = BAD_INPUTS[case]
    kwargs = dict(
        image=inputs["image"],
        prompt="a red cube",
        tracking_video=inputs["tracking"],
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_inference_steps=2,
        output_type="latent",
    )
    kwargs.update({name: _materialise(name, value, inputs) for name, value in overrides.items()})
    ran = []
    hooks = [
        module.register_forward_pre_hook(lambda *_: ran.append(1))
        for module in (tiny_pipe.text_encoder, tiny_pipe.transformer, tiny_pipe.vae.encoder)
    ]
    try:
        with pytest.raises(DasError, match=message):
            tiny_pipe(**kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == []


def test_other_frame_counts_run(run, tiny_pipe, inputs):
    """4k + 1 frames other than 49 work (diffusers uses sin-cos positions there), e.g. for training previews."""
    out = run(tiny_pipe, inputs, steps=1, num_frames=9, tracking=inputs["tracking"][:9], output_type="latent")
    assert out.frames.shape == (1, 3, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8)
