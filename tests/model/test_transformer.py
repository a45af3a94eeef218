"""DasTransformer3DModel: checkpoint layout, forward order, base equivalence, save/load, conversion, checkpointing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from diffusers import CogVideoXTransformer3DModel

from das_core.errors import DasError
from das_core.model import REFERENCE_CLASS_NAME, DasTransformer3DModel
from das_core.model.tiny import build_tiny_transformer
from das_core.model.transformer import COGVIDEOX_5B_I2V_CONFIG
from tests.model.conftest import assert_same_numbers

# Every parameter of the published checkpoint, one name and shape per line.
TSV = Path(__file__).with_name("das_transformer_params.tsv")

# The published DaS transformer: CogVideoX-5B-I2V's config plus the tracking branch (das_core/model/README.md,
# Checkpoint layout). The TSV, not this config, is what the parity test checks against.
PUBLISHED_CONFIG = dict(num_tracking_blocks=18, **COGVIDEOX_5B_I2V_CONFIG)


def _inputs(model, seed=0, batch=2):
    """Random transformer inputs for the tiny config (13 latent frames of 8 x 12)."""
    gen = torch.Generator().manual_seed(seed)
    config = model.config
    shape = (batch, 13, config.in_channels, config.sample_height, config.sample_width)
    hidden = torch.randn(shape, generator=gen)
    tracking = torch.randn(shape, generator=gen)
    text = torch.randn(batch, 226, config.text_embed_dim, generator=gen)
    timestep = torch.tensor([999, 500][:batch])
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    rotary = get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=((0, 0), (config.sample_height // 2, config.sample_width // 2)),
        grid_size=(config.sample_height // 2, config.sample_width // 2),
        temporal_size=13,
    )
    return hidden, text, tracking, timestep, rotary


def _base_from(model):
    """diffusers' plain CogVideoX transformer holding the main weights of `model`."""
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k != "num_tracking_blocks"}
    base = CogVideoXTransformer3DModel(**config).eval()
    missing, _ = base.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    return base


def test_published_config_has_exactly_the_checkpoint_parameters():
    expected = dict(line.rstrip("\n").split("\t") for line in TSV.read_text().splitlines()[1:])
    with torch.device("meta"):
        model = DasTransformer3DModel(**PUBLISHED_CONFIG)
    got = {name: "x".join(map(str, tensor.shape)) for name, tensor in model.state_dict().items()}
    assert len(expected) == 1495
    assert sorted(got) == sorted(expected)
    assert got == expected
    assert sum(t.numel() for t in model.state_dict().values()) == pytest.approx(8.18e9, rel=1e-3)


def test_reference_forward_order():
    """das_core/model/README.md, Forward pass, re-implemented line by line with a live tracking branch."""
    model = build_tiny_transformer(seed=3)
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with torch.no_grad():
        got = model(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample

        emb = model.time_embedding(model.time_proj(timestep).to(hidden.dtype))
        main = model.patch_embed(text, hidden)
        txt, vid = main[:, :226], main[:, 226:]
        trk = model.patch_embed(text, tracking)[:, 226:]
        track = model.initial_combine_linear(vid + trk)
        for i, block in enumerate(model.transformer_blocks):
            vid, txt = block(vid, txt, emb, rotary)
            if i < 2:
                track = model.transformer_blocks_copy[i](track, txt, emb, rotary)[0]
                track = model.combine_linears[i](track)
                vid = vid + track
        out = model.proj_out(model.norm_out(model.norm_final(vid), temb=emb))
        b, f, _, h, w = hidden.shape
        expected = out.reshape(b, f, h // 2, w // 2, -1, 2, 2).permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
    assert got.shape == (2, 13, 4, 8, 12)
    assert_same_numbers(got, expected)


def test_tracking_changes_the_output_when_linears_are_live():
    model = build_tiny_transformer(seed=3)
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with torch.no_grad():
        a = model(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample
        b = model(hidden, text, tracking.flip(-1), timestep, image_rotary_emb=rotary).sample
    assert (a - b).abs().max() > 1e-3


def test_zero_linears_equal_plain_cogvideox():
    model = build_tiny_transformer(seed=1)
    model.zero_combine_linears()
    base = _base_from(model)
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with torch.no_grad():
        ours = model(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample
        theirs = base(hidden, text, timestep, image_rotary_emb=rotary).sample
    assert_same_numbers(ours, theirs)


def test_no_tracking_maps_runs_the_base_model():
    model = build_tiny_transformer(seed=2)  # live linears: None must skip the branch entirely
    base = _base_from(model)
    hidden, text, _, timestep, rotary = _inputs(model)
    with torch.no_grad():
        ours = model(hidden, text, None, timestep, image_rotary_emb=rotary).sample
        theirs = base(hidden, text, timestep, image_rotary_emb=rotary).sample
    assert_same_numbers(ours, theirs)


def test_tracking_maps_of_another_shape_are_refused():
    model = build_tiny_transformer(seed=0)
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with pytest.raises(DasError, match="tracking_maps has shape"):
        model(hidden, text, tracking[:, :5], timestep, image_rotary_emb=rotary)


def test_save_load_round_trip(tmp_path):
    model = build_tiny_transformer(seed=4)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == REFERENCE_CLASS_NAME
    assert config["num_tracking_blocks"] == 2
    loaded = DasTransformer3DModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, DasTransformer3DModel)
    assert loaded.config.num_tracking_blocks == 2
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample,
            model(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample,
            rtol=0,
            atol=0,
        )


def test_from_base_copies_blocks_and_zeroes_linears():
    torch.manual_seed(5)
    config = {k: v for k, v in build_tiny_transformer().config.items() if not k.startswith("_")}
    config.pop("num_tracking_blocks")
    base = CogVideoXTransformer3DModel(**config).eval()
    model = DasTransformer3DModel.from_base(base, num_tracking_blocks=2).eval()
    assert model.config.num_tracking_blocks == 2
    for i in range(2):
        main, copy = model.transformer_blocks[i].state_dict(), model.transformer_blocks_copy[i].state_dict()
        assert all(torch.equal(main[k], copy[k]) for k in main)
        assert model.transformer_blocks_copy[i] is not model.transformer_blocks[i]
    for linear in (model.initial_combine_linear, *model.combine_linears):
        assert linear.weight.device.type == "cpu"
        assert not linear.weight.any() and not linear.bias.any()
    hidden, text, tracking, timestep, rotary = _inputs(model)
    with torch.no_grad():
        assert_same_numbers(
            model(hidden, text, tracking, timestep, image_rotary_emb=rotary).sample,
            base(hidden, text, timestep, image_rotary_emb=rotary).sample,
        )
    trainable = {id(p) for p in model.tracking_parameters()}
    assert len(trainable) == sum(1 for _ in model.transformer_blocks_copy.parameters()) + 2 * 3


def test_too_many_tracking_blocks_is_a_clear_error():
    with pytest.raises(DasError, match="num_tracking_blocks is 5"):
        DasTransformer3DModel(num_tracking_blocks=5, num_layers=3, num_attention_heads=2, attention_head_dim=8)


def test_gradient_checkpointing_gives_the_same_gradients():
    """Training needs it: backward runs through checkpointed main and copy blocks with equal grads."""
    grads = []
    for checkpointing in (False, True):
        model = build_tiny_transformer(seed=6).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.gradient_checkpointing
        hidden, text, tracking, timestep, rotary = _inputs(model, batch=1)
        calls = []
        copy_block = model.transformer_blocks_copy[0]
        forward = copy_block.forward
        copy_block.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)  # noqa: B023
        loss = model(hidden, text, tracking, timestep[:1], image_rotary_emb=rotary).sample.square().mean()
        loss.backward()
        # With checkpointing the block runs again during backward (recomputation).
        assert len(calls) == (2 if checkpointing else 1)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert any(name.startswith("transformer_blocks_copy.") for name in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)
