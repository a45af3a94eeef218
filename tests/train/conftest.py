"""Shared fixtures for the training tests: a tiny model folder and a tiny synthesised dataset.

The dataset is made for real: the example scene `thrown_ball.py` is built and rendered by Blender
(the bpy module, in a subprocess) through `das dataset synth`, at the tiny model's size.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_FRAMES = 5  # 4k + 1 with k = 1: two latent frames, the fewest that still hold motion
TINY_WIDTH, TINY_HEIGHT = 96, 64  # the tiny model's learned positional embeddings fix its size


def build_example_scene(name: str, folder: Path) -> Path:
    """Build `examples/scenes/<name>.py` into `folder/<name>.blend` with this Python's bpy."""
    blend = folder / f"{name}.blend"
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "scenes" / f"{name}.py"), str(blend)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return blend


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from das_core.model.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def ball_scene(tmp_path_factory) -> Path:
    return build_example_scene("thrown_ball", tmp_path_factory.mktemp("scenes"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, ball_scene) -> Path:
    """One synthesised sample: 5 frames of 96 x 64, Workbench, random background colour."""
    from das_core.train.synth import SynthOptions, synthesise

    root = tmp_path_factory.mktemp("dataset")
    options = SynthOptions(num_frames=TINY_FRAMES, width=TINY_WIDTH, height=TINY_HEIGHT)
    synthesise([ball_scene], root, options, progress=False)
    return root
