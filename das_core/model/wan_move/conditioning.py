"""Wan-Move's motion conditioning: copy first-frame latent features along point tracks.

The conditional branch sees the image latent `y` edited so that each visible track carries the features of
its frame-0 cell to its cell in every later latent frame; the unconditional branch keeps `y` as it is
(reference: `wan/modules/trajectory.py` `create_pos_feature_map` + `replace_feature`, used by
`wan/wan_move.py` `generate`). Tracks are in output pixels, sampled every `TEMPORAL_STRIDE` frames.
"""

from __future__ import annotations

import torch

from das_core.errors import DasError

# Wan 2.1 VAE compression (reference `wan_move_14B.vae_stride`): 4 frames and 8 x 8 pixels per latent cell.
TEMPORAL_STRIDE = 4
SPATIAL_STRIDE = 8


def track_cells(
    tracks: torch.Tensor, visibility: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent cell of each track at each latent frame, and whether the track is there.

    `tracks` [T, N, 2] holds (x, y) in pixels of a `width` x `height` video; `visibility` [T, N] is bool.
    Returns `cells` [T', N, 2] long (row, column) and `present` [T', N] bool with T' = (T - 1) // 4 + 1:
    latent frame k reads track frame 4k, and a point counts when it is visible and inside the frame.
    """
    sampled = tracks[::TEMPORAL_STRIDE].float()
    visible = visibility[::TEMPORAL_STRIDE].bool()
    x, y = sampled[..., 0], sampled[..., 1]
    # Comparisons with NaN are False, so a non-finite point is never present.
    present = visible & (x >= 0) & (y >= 0) & (x < width) & (y < height)
    safe = torch.where(present[..., None], sampled, torch.zeros_like(sampled))
    cells = torch.div(safe.flip(-1), SPATIAL_STRIDE, rounding_mode="floor").long()
    return cells, present


def replace_track_features(
    y: torch.Tensor, tracks: torch.Tensor, visibility: torch.Tensor, order: torch.Tensor | None = None
) -> torch.Tensor:
    """`y` [B, C, F', h, w] with track features copied, as a new tensor (`y` is left unchanged).

    For every track present at latent frame 0 and at a later latent frame k, the features of `y` at
    (frame 0, its frame-0 cell) are written to (frame k, its frame-k cell). Tracks are written in `order`
    (a permutation of range(N); identity when None), so where tracks collide the last one written wins.
    A track absent at frame 0 writes nothing: the reference would index its -1 "no cell" marker and copy
    the bottom-right cell instead (see README.md).
    """
    if y.ndim != 5:
        raise DasError(f"y must be latents [B, C, F, h, w], got shape {tuple(y.shape)}")
    _, channels, frames, rows, columns = y.shape
    cells, present = _checked_cells(y, tracks, visibility)
    count = tracks.shape[1]
    if order is not None:
        if sorted(order.tolist()) != list(range(count)):
            raise DasError(f"order must be a permutation of range({count}), got {order.tolist()}")
        cells, present = cells[:, order.to(cells.device)], present[:, order.to(present.device)]

    writes = present[1:] & present[:1]
    frame, rank = writes.nonzero(as_tuple=True)
    frame = frame + 1
    target = (frame * rows + cells[frame, rank, 0]) * columns + cells[frame, rank, 1]
    source = cells[0, rank, 0] * columns + cells[0, rank, 1]

    # Last write wins: keep, per target cell, the write with the highest rank in the order.
    winner = torch.full((frames * rows * columns,), -1, dtype=torch.long, device=target.device)
    winner = winner.scatter_reduce(0, target, rank, reduce="amax")
    keep = winner[target] == rank

    flat = y.reshape(y.shape[0], channels, -1)
    edited = flat.clone()
    target, source = target[keep].to(y.device), source[keep].to(y.device)
    edited[:, :, target] = flat[:, :, source]
    return edited.reshape(y.shape)


def _checked_cells(
    y: torch.Tensor, tracks: torch.Tensor, visibility: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`track_cells` for `y`'s size, after checking that tracks, visibility and `y` agree."""
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise DasError(f"tracks must be [T, N, 2] (x, y in output pixels), got shape {tuple(tracks.shape)}")
    if tuple(visibility.shape) != tuple(tracks.shape[:2]):
        raise DasError(
            f"visibility must be [T, N] = {tuple(tracks.shape[:2])} like the tracks, got {tuple(visibility.shape)}"
        )
    frames, rows, columns = y.shape[2:]
    expected = (tracks.shape[0] - 1) // TEMPORAL_STRIDE + 1
    if expected != frames:
        raise DasError(
            f"{tracks.shape[0]} track frames give {expected} latent frames but y has {frames}; "
            f"give one track frame per video frame ({(frames - 1) * TEMPORAL_STRIDE + 1})"
        )
    return track_cells(tracks, visibility, rows * SPATIAL_STRIDE, columns * SPATIAL_STRIDE)
