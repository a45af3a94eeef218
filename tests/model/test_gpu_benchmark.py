"""The GPU benchmark script's code path, run at the tiny size on the CPU so it cannot rot unseen."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_das.py"


@pytest.fixture(scope="module")
def gpu_das():
    spec = importlib.util.spec_from_file_location("gpu_das", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_das"] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_das"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_refuses_clearly_without_cuda(gpu_das, capsys):
    assert gpu_das.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_tiny_smoke_run_reports_das_and_base(gpu_das, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert gpu_das.main(["--tiny", "--steps", "2", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [(r["model"], r["offload"]) for r in results["results"]] == [("CogVideoX-5B-I2V", "none"), ("DaS", "none")]
    assert all(r["step_s"] > 0 and r["decode_s"] > 0 for r in results["results"])
    assert results["das_over_base_step"] > 0
    assert "| DaS | none | 2 |" in capsys.readouterr().out


def test_real_size_configs_match_the_published_checkpoint(gpu_das):
    with torch.device("meta"):
        das = gpu_das.DasTransformer3DModel(num_tracking_blocks=18, **gpu_das.BASE_CONFIG)
    assert sum(t.numel() for t in das.state_dict().values()) == 8_184_009_792
