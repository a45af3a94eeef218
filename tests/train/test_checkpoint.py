"""Checkpoint folders: naming, latest, pruning to the limit."""

from __future__ import annotations

import pytest

from das_core.errors import DasError
from das_core.train.checkpoint import checkpoint_step, list_checkpoints, prune_checkpoints, resolve_resume


def test_latest_is_the_highest_step_not_the_last_name(tmp_path):
    for step in (500, 1000, 1500, 50):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-notes").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"checkpoint-{s}" for s in (50, 500, 1000, 1500)]
    assert resolve_resume(tmp_path, "latest").name == "checkpoint-1500"
    assert resolve_resume(tmp_path, "checkpoint-500").name == "checkpoint-500"
    assert checkpoint_step(tmp_path / "checkpoint-1000") == 1000


def test_prune_leaves_room_for_the_next(tmp_path):
    for step in (5, 10, 15):
        (tmp_path / f"checkpoint-{step}").mkdir()
    removed = prune_checkpoints(tmp_path, 2)
    assert [p.name for p in removed] == ["checkpoint-5", "checkpoint-10"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-15"]
    assert prune_checkpoints(tmp_path, None) == []


def test_resume_edge_cases(tmp_path):
    assert resolve_resume(tmp_path, None) is None
    assert resolve_resume(tmp_path, "latest") is None  # a first run with --resume_from_checkpoint latest
    with pytest.raises(DasError, match="no such checkpoint"):
        resolve_resume(tmp_path, "checkpoint-7")
