"""load_pipeline on the tiny model saved in the published layout; its clear errors."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from diffusers import CogVideoXDPMScheduler

from das_core.errors import DasError
from das_core.model import (
    DasTransformer3DModel,
    loading,
)
from das_core.model.loading import load_pipeline
from das_core.model.pipeline import DasImageToVideoPipeline
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH
from tests.model.conftest import assert_same_numbers


def test_saved_layout_is_the_published_one(tiny_dir):
    for name in ("model_index.json", "scheduler", "text_encoder", "tokenizer", "transformer", "vae"):
        assert (tiny_dir / name).exists(), name
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["transformer"][1] == "CogVideoXTransformer3DModelTracking"  # the reference's, not ours
    config = json.loads((tiny_dir / "transformer" / "config.json").read_text())
    assert config["num_tracking_blocks"] == 2
    assert config["_class_name"] == "CogVideoXTransformer3DModelTracking"


def test_loads_our_classes_and_reproduces_the_built_pipeline(run, tiny_dir, tiny_pipe, inputs):
    pipe = load_pipeline(tiny_dir, device="cpu", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe, DasImageToVideoPipeline)
    assert isinstance(pipe.transformer, DasTransformer3DModel)
    assert isinstance(pipe.scheduler, CogVideoXDPMScheduler)
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    loaded_state = pipe.transformer.state_dict()
    for name, tensor in tiny_pipe.transformer.state_dict().items():
        # diffusers builds the positional-embedding buffer in float64; loading casts it to float32.
        assert torch.equal(loaded_state[name], tensor.to(loaded_state[name].dtype)), name
    assert pipe.tokenizer("a red cube").input_ids == tiny_pipe.tokenizer("a red cube").input_ids
    torch.manual_seed(0)
    loaded = run(pipe, inputs, steps=1, output_type="latent").frames
    torch.manual_seed(0)
    built = run(tiny_pipe, inputs, steps=1, output_type="latent").frames
    assert_same_numbers(loaded, built)


def test_components_load_directly_in_the_target_dtype(tiny_dir, monkeypatch):
    """No fp32 copy then cast: no module is ever moved to another dtype after loading."""
    casts = []
    real_to = torch.nn.Module.to

    def recording_to(self, *args, **kwargs):
        if any(isinstance(a, torch.dtype) for a in args) or "dtype" in kwargs:
            casts.append(type(self).__name__)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recording_to)
    pipe = load_pipeline(tiny_dir, device="cpu", dtype=torch.bfloat16, vae_tiling=False)
    for component in (pipe.text_encoder, pipe.vae, pipe.transformer):
        assert {p.dtype for p in component.parameters()} == {torch.bfloat16}, type(component).__name__
    assert casts == []
    assert not pipe.vae.use_tiling


def test_missing_folder_and_missing_parts(tmp_path, tiny_dir):
    with pytest.raises(DasError, match="does not exist"):
        load_pipeline(tmp_path / "nowhere", device="cpu")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(DasError, match="missing vae"):
        load_pipeline(broken, device="cpu")


def test_plain_cogvideox_transformer_is_named(tmp_path, tiny_dir):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_dir, plain)
    config_path = plain / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    del config["num_tracking_blocks"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(DasError, match="from_base"):
        load_pipeline(plain, device="cpu")


def test_fixed_size_is_read_from_the_configs(tmp_path, tiny_dir):
    """Learned positional embeddings fix the size (the tiny model's 96 x 64); without them any size works."""
    assert loading.model_fixed_size(tiny_dir) == (TINY_HEIGHT, TINY_WIDTH)
    free = tmp_path / "free"
    shutil.copytree(tiny_dir, free)
    config_path = free / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["use_learned_positional_embeddings"] = False
    config_path.write_text(json.dumps(config))
    assert loading.model_fixed_size(free) is None


def test_hub_id_without_network_names_the_next_step(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(DasError) as error:
        load_pipeline("EXCAI/Diffusion-As-Shader", device="cpu")
    message = str(error.value)
    assert "hf download EXCAI/Diffusion-As-Shader --local-dir" in message
    assert "das tiny-model" in message


def test_bad_offload_choices():
    with pytest.raises(DasError, match="offload is 'fast'"):
        load_pipeline("whatever", offload="fast")
    with pytest.raises(DasError, match="on the CPU use --offload none"):
        load_pipeline("whatever", device="cpu", offload="model")


def test_weight_sizes_come_from_the_safetensors_headers(tiny_dir, tiny_pipe):
    sizes = loading.component_weight_bytes(tiny_dir, torch.bfloat16)
    for name in ("text_encoder", "transformer", "vae"):
        module = getattr(tiny_pipe, name)
        # Saved tensors (parameters + persistent buffers) at 2 bytes each; tied weights saved once.
        expected = sum(t.numel() for t in module.state_dict().values()) * 2
        assert sizes[name] <= expected and sizes[name] >= expected * 0.7, name
    assert loading.required_device_bytes(sizes, "model") < loading.required_device_bytes(sizes, "none")
    assert loading.required_device_bytes(sizes, "sequential") < loading.required_device_bytes(sizes, "model")


def test_published_sizes_need_offload_on_a_24_gb_card():
    """Planning numbers (das_core/model/README.md, Costs): ~16.4 GB transformer + ~9.5 GB T5 in bf16."""
    sizes = {"transformer": 8_184_009_792 * 2, "text_encoder": 4_762_310_656 * 2, "vae": 215_000_000 * 2}
    gib24 = 24 * 10**9
    assert loading.required_device_bytes(sizes, "none") > gib24
    assert loading.required_device_bytes(sizes, "model") < gib24
    assert loading.required_device_bytes(sizes, "none") < 40 * 10**9


def test_not_enough_cuda_memory_names_offload(tiny_dir, monkeypatch):
    """No GPU here: torch.cuda.mem_get_info is faked to report 1 GiB free; the check itself is real."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 80 * 2**30))
    sizes = loading.component_weight_bytes(tiny_dir, torch.bfloat16)
    assert loading.required_device_bytes(sizes, "none") > 2**30  # activations margin alone exceeds 1 GiB
    with pytest.raises(DasError, match="--offload model"):
        loading.check_device_memory(tiny_dir, torch.device("cuda"), torch.bfloat16, "none")
    with pytest.raises(DasError, match="--offload sequential"):
        loading.check_device_memory(tiny_dir, torch.device("cuda"), torch.bfloat16, "model")


def test_published_sentencepiece_tokenizer_folder_loads(tmp_path, tiny_dir):
    """The published tokenizer/ holds only a sentencepiece `spiece.model`; train a tiny one and load it."""
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path / "spm-model"
    shutil.copytree(tiny_dir, folder)
    shutil.rmtree(folder / "tokenizer")
    (folder / "tokenizer").mkdir()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a red cube moving fast across the street\nthe camera pans over a green field\n" * 50)
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer" / "spiece"), vocab_size=30,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    (folder / "tokenizer" / "spiece.vocab").unlink()
    pipe = load_pipeline(folder, device="cpu", dtype=torch.float32)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer" / "spiece.model"))
    assert pipe.tokenizer("a red cube").input_ids == [*reference.encode("a red cube"), 1]  # + </s>
    embeds, _ = pipe.encode_prompt("a red cube", do_classifier_free_guidance=False, device="cpu")
    assert embeds.shape == (1, 226, 32)


def test_compile_wraps_the_transformer_in_place(tiny_dir):
    """`compile=True` marks the transformer for torch.compile (compilation itself happens on first call)."""
    pipe = load_pipeline(tiny_dir, device="cpu", dtype=torch.float32, compile=True)
    assert isinstance(pipe.transformer, DasTransformer3DModel)
    assert pipe.transformer._compiled_call_impl is not None
    plain = load_pipeline(tiny_dir, device="cpu", dtype=torch.float32)
    assert plain.transformer._compiled_call_impl is None
