"""Wan-Move on tiny models: track conditioning against the reference rule, DiT conversion, loading, the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

from das_core.errors import DasError
from das_core.model.wan_move.conditioning import replace_track_features, track_cells
from das_core.model.wan_move.convert import diffusers_key, load_original_transformer, write_diffusers_transformer
from das_core.model.wan_move.loading import DOWNLOAD_COMMAND, load_base_components, load_wan_move_pipeline
from das_core.model.wan_move.pipeline import DEFAULT_NEGATIVE_PROMPT, build_scheduler, reference_sigmas
from das_core.model.wan_move.tiny import (
    TINY_HEIGHT,
    TINY_IMAGE_DIM,
    TINY_NUM_FRAMES,
    TINY_TEXT_DIM,
    TINY_WIDTH,
    build_tiny_pipeline,
    build_tiny_transformer,
    save_original_layout,
    save_tiny_wan_move,
)
from tests.model.conftest import assert_same_numbers

# ---------------------------------------------------------------- conditioning


def reference_rule(y, tracks, visibility, order):
    """The reference's rule as a direct loop (wan/modules/trajectory.py): latent frame k reads track frame 4k;
    a point counts when visible and 0 <= x < W, 0 <= y < H; its cell is (y // 8, x // 8); tracks are written
    in `order`, each to every later frame where it counts, from its frame-0 cell, so the last write wins.
    One change, documented in README.md: a track with no frame-0 cell writes nothing."""
    out = y.clone()
    frames, rows, columns = y.shape[2:]

    def cell(latent_frame, track):
        frame = 4 * latent_frame
        x, yy = float(tracks[frame, track, 0]), float(tracks[frame, track, 1])
        if not visibility[frame, track] or not (0 <= x < columns * 8 and 0 <= yy < rows * 8):
            return None
        return int(yy // 8), int(x // 8)

    for track in order:
        source = cell(0, track)
        if source is None:
            continue
        for latent_frame in range(1, frames):
            target = cell(latent_frame, track)
            if target is not None:
                out[:, :, latent_frame, target[0], target[1]] = y[:, :, 0, source[0], source[1]]
    return out


def crafted_tracks():
    """13 frames (4 latent frames) on a 48 x 32 video (6 x 4 cells), one case per track."""
    frames = np.arange(13, dtype=np.float32)[:, None]
    tracks = np.zeros((13, 9, 2), dtype=np.float32)
    visible = np.ones((13, 9), dtype=bool)
    tracks[:, 0] = np.hstack([2 + frames * 3.5, np.full_like(frames, 5)])  # moves right through cells
    tracks[:, 1] = [[20, 20]] * 13  # 1 and 2 collide at (2, 2) in latent frame 1
    tracks[:, 2] = [[42, 3]] * 13
    tracks[4, 2] = [17, 23]
    tracks[:, 3] = [[9, 9]] * 13
    tracks[:, 3, 0] += frames[:, 0]
    visible[8, 3] = False  # hidden in latent frame 2 only
    tracks[:, 4] = [[30, 12]] * 13
    tracks[12, 4] = [48, 12]  # x == width: outside
    tracks[8, 4] = [-0.5, 12]  # outside on the left
    tracks[:, 5] = [[25, 25]] * 13
    visible[0, 5] = False  # no frame-0 cell: writes nothing
    tracks[:, 6] = [[47.99, 31.99]] * 13  # last cell, just inside
    tracks[:, 6] -= np.hstack([frames * 2, frames])
    tracks[:, 7] = np.nan  # never visible, no position
    visible[:, 7] = False
    tracks[:, 8] = [[1, 1]] * 13  # stationary: copies its own frame-0 features forward
    return torch.from_numpy(tracks), torch.from_numpy(visible)


def random_latents(seed=0, shape=(2, 3, 4, 4, 6)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("order", [None, [8, 7, 6, 5, 4, 3, 2, 1, 0], [3, 1, 4, 0, 5, 2, 6, 8, 7]])
def test_conditioning_matches_the_reference_rule_on_crafted_tracks(order):
    tracks, visible = crafted_tracks()
    y = random_latents()
    order_tensor = None if order is None else torch.tensor(order)
    edited = replace_track_features(y, tracks, visible, order_tensor)
    expected = reference_rule(y, tracks, visible, order or range(9))
    assert torch.equal(edited, expected)
    assert not torch.equal(edited, y)
    # The collision at (frame 1, cell (2, 2)) goes to whichever of tracks 1 and 2 is written last.
    sequence = list(order or range(9))
    last = max((1, 2), key=sequence.index)
    source = (2, 2) if last == 1 else (0, 5)
    assert torch.equal(edited[:, :, 1, 2, 2], y[:, :, 0, source[0], source[1]])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conditioning_matches_the_reference_rule_on_random_tracks(seed):
    rng = np.random.default_rng(seed)
    tracks = torch.from_numpy(rng.uniform(-10, 60, (13, 60, 2)).astype(np.float32))
    visible = torch.from_numpy(rng.random((13, 60)) < 0.8)
    order = torch.from_numpy(rng.permutation(60))
    y = random_latents(seed)
    expected = reference_rule(y, tracks, visible, order.tolist())
    assert torch.equal(replace_track_features(y, tracks, visible, order), expected)


def test_conditioning_leaves_its_input_alone_and_skips_absent_frame_zero():
    tracks, visible = crafted_tracks()
    y = random_latents()
    before = y.clone()
    replace_track_features(y, tracks, visible)
    assert torch.equal(y, before)
    only_track_5 = replace_track_features(y, tracks[:, 5:6], visible[:, 5:6])
    assert torch.equal(only_track_5, y)


def test_track_cells_use_every_fourth_frame_and_the_frame_bounds():
    tracks, visible = crafted_tracks()
    cells, present = track_cells(tracks, visible, height=32, width=48)
    assert cells.shape == (4, 9, 2) and present.shape == (4, 9)
    assert cells[:, 0].tolist() == [[0, 0], [0, 2], [0, 3], [0, 5]]  # x = 2, 16, 30, 44 at frames 0, 4, 8, 12
    assert present[:, 4].tolist() == [True, True, False, False]
    assert present[:, 3].tolist() == [True, True, False, True]
    assert cells[0, 6].tolist() == [3, 5] and not present[:, 7].any()


def test_conditioning_rejects_mismatched_shapes():
    tracks, visible = crafted_tracks()
    y = random_latents()
    with pytest.raises(DasError, match="visibility must be"):
        replace_track_features(y, tracks, visible[:, :3])
    with pytest.raises(DasError, match="latent frames"):
        replace_track_features(y, tracks[:9], visible[:9])
    with pytest.raises(DasError, match="permutation"):
        replace_track_features(y, tracks, visible, torch.zeros(9, dtype=torch.long))


# ---------------------------------------------------------------- conversion


def _transformer_inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(1, 36, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8, generator=gen),
        timestep=torch.tensor([750]),
        encoder_hidden_states=torch.randn(1, 12, TINY_TEXT_DIM, generator=gen),
        encoder_hidden_states_image=torch.randn(1, 5, TINY_IMAGE_DIM, generator=gen),
        return_dict=False,
    )


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """The tiny model saved as the published DiT (original layout, two shards) plus a diffusers base."""
    return save_tiny_wan_move(tmp_path_factory.mktemp("tiny-wan-move"), seed=0)


def test_original_layout_dit_converts_to_the_same_model(tiny_folders, tmp_path):
    dit, _ = tiny_folders
    native = build_tiny_transformer(seed=0)
    converted = load_original_transformer(dit, torch.float32)
    written = WanTransformer3DModel.from_pretrained(write_diffusers_transformer(dit, tmp_path / "out", torch.float32))
    with torch.no_grad():
        expected = native(**_transformer_inputs())[0]
        for model in (converted, written):
            assert_same_numbers(model(**_transformer_inputs())[0], expected)
    assert (
        "blocks.0.self_attn.q.weight"
        in json.loads((dit / "diffusion_pytorch_model.safetensors.index.json").read_text())["weight_map"]
    )


def test_conversion_keeps_diffusers_float32_modules_in_bfloat16(tiny_folders):
    model = load_original_transformer(tiny_folders[0], torch.bfloat16)
    dtypes = {name: parameter.dtype for name, parameter in model.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16
    assert dtypes["blocks.0.norm2.weight"] == torch.float32  # the reference's norm3
    assert dtypes["scale_shift_table"] == torch.float32


def test_conversion_names_and_refusals(tmp_path):
    assert diffusers_key("blocks.3.cross_attn.k_img.weight") == "blocks.3.attn2.add_k_proj.weight"
    assert diffusers_key("blocks.3.norm3.bias") == "blocks.3.norm2.bias"
    assert diffusers_key("head.modulation") == "scale_shift_table"
    with pytest.raises(DasError, match="not a parameter"):
        diffusers_key("blocks.0.vace_proj.weight")
    folder = save_original_layout(build_tiny_transformer(), tmp_path / "dit")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "t2v"}))
    with pytest.raises(DasError, match="'i2v'"):
        load_original_transformer(folder)


# ---------------------------------------------------------------- loading


def test_loaded_pipeline_equals_the_built_one(tiny_folders, wan_inputs, reference_latents):
    dit, base = tiny_folders
    loaded = load_wan_move_pipeline(dit, base_model=base, device="cpu", dtype=torch.float32)
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(_run(loaded, wan_inputs).frames, reference_latents)


@pytest.mark.parametrize("options", [dict(fp8=True, dtype=torch.bfloat16), dict(offload="group")])
def test_memory_modes_run_on_the_cpu(tiny_folders, wan_inputs, reference_latents, options):
    dit, base = tiny_folders
    pipe = load_wan_move_pipeline(dit, base_model=base, device="cpu", **{"dtype": torch.float32, **options})
    pipe.set_progress_bar_config(disable=True)
    expected = reference_latents
    frames = _run(pipe, wan_inputs).frames
    assert frames.shape == expected.shape
    if options.get("fp8"):
        assert pipe.transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
        assert (frames - expected).abs().max() < 0.1 * expected.abs().max()
    else:
        assert_same_numbers(frames, expected)


def test_missing_weights_name_the_download_command(tmp_path, tiny_folders, monkeypatch):
    with pytest.raises(DasError, match=DOWNLOAD_COMMAND):
        load_wan_move_pipeline(tmp_path / "weights" / "wan-move", device="cpu")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for path in tiny_folders[0].iterdir():
        if not path.name.endswith("00002.safetensors"):
            (incomplete / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DasError, match="incomplete"):
        load_wan_move_pipeline(incomplete, device="cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DasError, match="not in the local Hugging Face cache"):
        load_wan_move_pipeline("no-such-owner/no-such-wan-move", device="cpu")
    with pytest.raises(DasError, match="hf download Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"):
        load_base_components(tmp_path / "no-base")
    with pytest.raises(DasError, match="offload is"):
        load_wan_move_pipeline(tiny_folders[0], base_model=tiny_folders[1], device="cpu", offload="sequential")


# ---------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def wan_pipe():
    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def wan_inputs():
    """An image at twice the output size and 6 tracks in its pixels (one hidden for a while)."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (2 * TINY_HEIGHT, 2 * TINY_WIDTH, 3), dtype=np.uint8)
    frames = np.linspace(0, 1, TINY_NUM_FRAMES, dtype=np.float32)[:, None]
    starts = rng.uniform(0, 2 * TINY_HEIGHT, (6, 2)).astype(np.float32)
    tracks = starts[None] + frames[..., None] * np.array([30.0, 10.0], dtype=np.float32)
    visible = np.ones(tracks.shape[:2], dtype=bool)
    visible[5:9, 2] = False
    return {"image": image, "tracks": tracks, "visibility": visible}


@pytest.fixture(scope="module")
def reference_latents(wan_pipe, wan_inputs):
    """The tiny pipeline's final latents for `wan_inputs`, seed 42, 2 steps."""
    return _run(wan_pipe, wan_inputs).frames


def _run(pipe, inputs, steps=2, **kwargs):
    return pipe(
        inputs["image"],
        "a red cube moving",
        kwargs.pop("tracks", inputs["tracks"]),
        kwargs.pop("visibility", inputs["visibility"]),
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_frames=kwargs.pop("num_frames", TINY_NUM_FRAMES),
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(kwargs.pop("seed", 42)),
        output_type=kwargs.pop("output_type", "latent"),
        **kwargs,
    )


def test_end_to_end_frames_with_progress_callbacks(wan_pipe, wan_inputs):
    steps = []

    def on_step(pipe, i, t, tensors):
        steps.append((i, int(t), tuple(tensors["latents"].shape)))
        return {}

    out = _run(wan_pipe, wan_inputs, steps=3, output_type="np", callback_on_step_end=on_step)
    assert not out.interrupted
    assert out.frames.shape == (1, TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0 and out.frames.std() > 0.01
    latent_shape = (1, 16, 4, TINY_HEIGHT // 8, TINY_WIDTH // 8)
    assert [(i, shape) for i, _, shape in steps] == [(0, latent_shape), (1, latent_shape), (2, latent_shape)]
    assert steps[0][1] > steps[1][1] > steps[2][1]


def test_same_seed_same_video_other_tracks_other_video(wan_pipe, wan_inputs, reference_latents):
    assert torch.equal(_run(wan_pipe, wan_inputs).frames, reference_latents)
    moved = _run(wan_pipe, wan_inputs, tracks=wan_inputs["tracks"][:, ::-1].copy()).frames
    assert (reference_latents - moved).abs().max() > 1e-4


def _capture_calls(pipe):
    """Record every transformer call's keyword inputs; returns (calls, remove)."""
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append({k: v.clone() for k, v in kwargs.items() if torch.is_tensor(v)}),
        with_kwargs=True,
    )
    return calls, handle.remove


def test_cond_and_uncond_conditions_differ_exactly_at_the_written_cells(wan_pipe, wan_inputs):
    calls, remove = _capture_calls(wan_pipe)
    try:
        _run(wan_pipe, wan_inputs, steps=1)
    finally:
        remove()
    cond, uncond = (call["hidden_states"] for call in calls)
    assert len(calls) == 2
    assert torch.equal(cond[:, :20], uncond[:, :20])  # noise and the 4 mask channels
    differs = (cond[:, 20:] != uncond[:, 20:]).any(dim=1)[0].nonzero().tolist()

    scale = torch.tensor([TINY_WIDTH / (2 * TINY_WIDTH), TINY_HEIGHT / (2 * TINY_HEIGHT)])
    tracks = torch.from_numpy(wan_inputs["tracks"]) * scale
    cells, present = track_cells(tracks, torch.from_numpy(wan_inputs["visibility"]), TINY_HEIGHT, TINY_WIDTH)
    written = {
        (frame, *cells[frame, track].tolist())
        for track in range(tracks.shape[1])
        if present[0, track]
        for frame in range(1, cells.shape[0])
        if present[frame, track]
    }
    assert written and sorted(written) == sorted(map(tuple, differs))
    # The negative prompt reaches only the unconditional call.
    assert not torch.equal(calls[0]["encoder_hidden_states"], calls[1]["encoder_hidden_states"])
    assert torch.equal(calls[0]["encoder_hidden_states_image"], calls[1]["encoder_hidden_states_image"])


def test_interrupt_stops_within_one_step(wan_pipe, wan_inputs):
    calls, remove = _capture_calls(wan_pipe)

    def cancel(pipe, i, t, tensors):
        pipe._interrupt = True
        return {}

    try:
        out = _run(wan_pipe, wan_inputs, steps=5, output_type="np", callback_on_step_end=cancel)
    finally:
        remove()
    assert out.interrupted and out.frames is None
    assert len(calls) == 2  # step 0's conditional and unconditional predictions only


def test_sampling_follows_the_reference_schedule():
    """40 steps at shift 3.0: the timesteps wan/utils/fm_solvers_unipc.py `set_timesteps` gives (copied from a
    run of the reference scheduler); diffusers' default flow spacing would differ by up to 4."""
    reference = [999, 991, 982, 973, 963, 954, 944, 933, 922, 911, 899, 887, 874, 861, 847, 832, 817, 801, 785, 767]
    reference += [749, 730, 710, 688, 666, 642, 617, 590, 562, 531, 499, 465, 428, 388, 345, 299, 249, 195, 136, 71]
    scheduler = build_scheduler(3.0)
    scheduler.set_timesteps(sigmas=reference_sigmas(40))
    assert scheduler.timesteps.tolist() == reference
    assert float(scheduler.sigmas[-1]) == 0.0
    assert abs(float(scheduler.sigmas[-2]) - 0.07136054337024689) < 1e-7
    assert DEFAULT_NEGATIVE_PROMPT.startswith("镜头晃动，色调艳丽")  # noqa: RUF001


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(tracks=np.zeros((TINY_NUM_FRAMES, 6, 3), np.float32)), "tracks must be float"),
        (dict(visibility=np.ones((TINY_NUM_FRAMES, 5), bool)), "visibility must be"),
        (
            dict(
                tracks=np.zeros((TINY_NUM_FRAMES - 4, 6, 2), np.float32),
                visibility=np.ones((TINY_NUM_FRAMES - 4, 6), bool),
            ),
            "one track frame per video frame",
        ),
        (dict(num_frames=TINY_NUM_FRAMES + 1), "4k \\+ 1"),
        (dict(num_frames=TINY_NUM_FRAMES + 4), "tracks have 13 frames but the video has 17"),
        (dict(visibility=np.full((TINY_NUM_FRAMES, 6), 0.5)), "visibility must be bool"),
        (dict(output_type="mp4"), "output_type"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(wan_pipe, wan_inputs, change, message):
    calls, remove = _capture_calls(wan_pipe)
    try:
        with pytest.raises(DasError, match=message):
            _run(wan_pipe, wan_inputs, **change)
    finally:
        remove()
    assert calls == []


def test_nan_in_a_visible_point_is_refused_but_allowed_when_hidden(wan_pipe, wan_inputs):
    tracks = wan_inputs["tracks"].copy()
    tracks[6, 2] = np.nan  # point 2 is hidden at frames 5-8
    _run(wan_pipe, wan_inputs, steps=1, tracks=tracks)
    tracks[3, 1] = np.nan
    with pytest.raises(DasError, match="track 1 is visible at frame 3"):
        _run(wan_pipe, wan_inputs, tracks=tracks)


def test_other_schedulers_are_refused(wan_inputs):
    pipe = build_tiny_pipeline(seed=0)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler()
    with pytest.raises(DasError, match="build_scheduler"):
        _run(pipe, wan_inputs)
