"""The dataset tools run without torch or bpy: `das dataset check|synth` and `das train --help` stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest

TORCH_FREE = ("args", "layout", "check", "synth", "checkpoint")


@pytest.mark.parametrize("name", TORCH_FREE)
def test_module_imports_without_torch_or_bpy(name):
    code = f'import sys; sys.modules["torch"] = None; sys.modules["bpy"] = None\nimport das_core.train.{name}'
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
