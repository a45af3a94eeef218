"""Wan-Move on tiny models: track conditioning against the reference rule, DiT conversion, loading, the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from das_core.errors import DasError
from das_core.model.wan_move.conditioning import replace_track_features, track_cells

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
