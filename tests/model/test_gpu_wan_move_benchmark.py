"""The Wan-Move GPU benchmark's code path (meta-device DiT, the pipeline's loop), run tiny on the CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_wan_move.py"


@pytest.fixture(scope="module")
def gpu_wan_move():
    spec = importlib.util.spec_from_file_location("gpu_wan_move", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_wan_move"] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_wan_move"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_refuses_clearly_without_cuda(gpu_wan_move, capsys):
    assert gpu_wan_move.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_tiny_run_times_the_pipeline_loop(gpu_wan_move, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert gpu_wan_move.main(["--tiny", "--steps", "2", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["mode"], r["steps"]) for r in results] == [("none", 2)] and results[0]["step_s"] > 0
    assert "| none | 2 |" in capsys.readouterr().out


def test_the_full_size_config_is_the_published_14b(gpu_wan_move):
    with torch.device("meta"):
        model = gpu_wan_move.WanTransformer3DModel(**gpu_wan_move.WAN_I2V_14B)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 1) == 16.4  # the README's count
