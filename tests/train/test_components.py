"""Model parts for training: conversion from plain CogVideoX, gradient checkpointing, bf16 runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from das_core.errors import DasError
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH, build_tiny_transformer
from das_core.train.components import TRAINABLE_PREFIXES, freeze_to_tracking_branch, load_components


def test_plain_cogvideox_folder_is_converted(tiny_model_dir, tmp_path):
    from diffusers import CogVideoXTransformer3DModel

    from das_core.model import DasTransformer3DModel

    folder = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_") and k != "num_tracking_blocks"}
    torch.manual_seed(3)
    plain = CogVideoXTransformer3DModel(**config)
    shutil.rmtree(folder / "transformer")
    plain.save_pretrained(folder / "transformer")

    transformer = load_components(str(folder), num_tracking_blocks=2).transformer
    assert isinstance(transformer, DasTransformer3DModel)
    plain = CogVideoXTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32)
    state, base = transformer.state_dict(), plain.state_dict()
    assert all(torch.equal(state[name], value) for name, value in base.items())
    for i in range(2):
        for name, value in plain.transformer_blocks[i].state_dict().items():
            assert torch.equal(state[f"transformer_blocks_copy.{i}.{name}"], value)
    linears = [name for name in state if name.startswith(("combine_linears.", "initial_combine_linear."))]
    assert linears and all(not state[name].any() for name in linears)


def test_tracking_blocks_default_to_the_checkpoints(tiny_model_dir, tmp_path):
    from das_core.train.args import parse_args

    args = parse_args(["--pretrained_model_name_or_path", str(tiny_model_dir), "--data_root", str(tmp_path)])
    transformer = load_components(args.pretrained_model_name_or_path, num_tracking_blocks=args.num_tracking_blocks)
    assert transformer.transformer.config.num_tracking_blocks == 2
    assert len(transformer.transformer.transformer_blocks_copy) == 2


def test_tracking_blocks_that_contradict_the_checkpoint_fail_before_any_weights_load(tiny_model_dir, tmp_path):
    folder = tmp_path / "das"
    shutil.copytree(tiny_model_dir, folder)
    shutil.rmtree(folder / "text_encoder")  # loading anything would fail on this first
    with pytest.raises(DasError, match="has 2 tracking blocks but --num_tracking_blocks is 3"):
        load_components(str(folder), num_tracking_blocks=3)


def test_plain_cogvideox_defaults_to_the_published_tracking_blocks(tiny_model_dir, tmp_path):
    """18 copy blocks, as published, do not fit the tiny 3-block base: the error says what does."""
    folder = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, folder)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    del config["num_tracking_blocks"]
    config_path.write_text(json.dumps(config))
    shutil.rmtree(folder / "text_encoder")
    with pytest.raises(DasError, match="--num_tracking_blocks 18 is more than the base model's 3 blocks"):
        load_components(str(folder))


def _inputs(model, generator):
    channels = model.config.in_channels // 2
    shape = (1, 2, channels, TINY_HEIGHT // 8, TINY_WIDTH // 8)
    return dict(
        hidden_states=torch.randn(1, 2, channels * 2, *shape[3:], generator=generator),
        encoder_hidden_states=torch.randn(1, 226, model.config.text_embed_dim, generator=generator),
        tracking_maps=torch.randn(1, 2, channels * 2, *shape[3:], generator=generator),
        timestep=torch.tensor([400]),
    )


def test_gradient_checkpointing_gives_the_same_gradients_and_only_to_the_tracking_branch():
    from das_core.train.loop import rotary_embeddings

    grads = []
    for checkpointing in (False, True):
        model = build_tiny_transformer(seed=0).train()
        names = freeze_to_tracking_branch(model)
        if checkpointing:
            model.enable_gradient_checkpointing()
        inputs = _inputs(model, torch.Generator().manual_seed(0))
        rotary = rotary_embeddings(model.config, TINY_HEIGHT // 8, TINY_WIDTH // 8, 2, "cpu")
        model(**inputs, image_rotary_emb=rotary, return_dict=False)[0].square().mean().backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == set(names) and all(name.startswith(TRAINABLE_PREFIXES) for name in names)
    for name in names:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def test_bf16_run_with_gradient_checkpointing(tiny_model_dir, tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from das_core.train.args import parse_args
    from das_core.train.loop import train

    args = parse_args(  # no --num_tracking_blocks: the checkpoint's 2
        f"--pretrained_model_name_or_path {tiny_model_dir} --data_root {tiny_dataset} --output_dir {tmp_path} "
        f"--height_buckets {TINY_HEIGHT} --width_buckets {TINY_WIDTH} --frame_buckets 5 "
        "--max_num_frames 5 --train_batch_size 1 --max_train_steps 2 --lr_warmup_steps 0 --seed 0 "
        "--mixed_precision bf16 --gradient_checkpointing --report_to none".split()
    )
    result = train(args)
    assert result.global_step == 2 and np.isfinite(result.losses).all() and args.num_tracking_blocks == 2
    weights = load_file(result.transformer_dir / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
