"""Batches of pixel windows: many small rectangles (a triangle's box, a point's rectangle) grouped
by size, so one vectorised pass tests or paints every candidate pixel of a batch."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

_BATCH_CANDIDATES = 1 << 18  # candidate pixels tested at once (a float32 temporary of 1 MB, in cache)
# Window sizes that batches are grouped by: up to 3 pixels, then doubling. Coarse on purpose: a
# batch costs some 90 numpy calls, each holding the GIL for a moment while the other render
# thread waits, so fewer, larger batches beat snug windows.
_LADDER = 3 * 2 ** np.arange(30)


@functools.lru_cache(maxsize=4)
def _ladder_steps(largest: int) -> np.ndarray:
    """For each size 0..largest, the index of the smallest `_LADDER` size that holds it."""
    return np.searchsorted(_LADDER, np.arange(largest + 1)).astype(np.int16)


def window_batches(
    columns: np.ndarray, rows: np.ndarray, max_columns: int, max_rows: int, batch_cost: int = 0
) -> tuple[np.ndarray, list[tuple[slice, int, int]]]:
    """Group windows of columns x rows pixels by size: (order, batches), where each batch
    (part, columns, rows) is the windows `order[part]`, all within columns x rows.

    Sizes are rounded up to the `_LADDER` (3, then doubling), so there are few groups, each
    with the window of its largest member, and a group is cut into batches of at most
    `_BATCH_CANDIDATES` pixels (a close-up plane stays bounded). With a `batch_cost` (a batch's
    fixed cost, in candidate pixels), a group joins the one before it in size order when that
    adds fewer candidates than the cost: few windows (one frame of a small mesh) make many
    small groups, whose numpy calls' overhead outweighs their pixels.
    """
    if not len(columns):
        return np.zeros(0, dtype=np.intp), []
    step = _ladder_steps(max(max_columns, max_rows))
    key = step[columns] * len(_LADDER) + step[rows]
    order = np.argsort(key, kind="stable")  # radix sort: the keys are int16
    bounds = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1, len(order)]
    widths = np.minimum(np.maximum.reduceat(columns[order], bounds[:-1]), max_columns)
    heights = np.minimum(np.maximum.reduceat(rows[order], bounds[:-1]), max_rows)
    groups: list[tuple[int, int, int, int]] = []
    for first, last, width, height in zip(bounds[:-1].tolist(), bounds[1:].tolist(), widths.tolist(), heights.tolist()):
        if groups:
            start, _, before_width, before_height = groups[-1]
            joined_width, joined_height = max(width, before_width), max(height, before_height)
            separate = (first - start) * before_width * before_height + (last - first) * width * height
            if (last - start) * joined_width * joined_height < separate + batch_cost:
                groups[-1] = (start, last, joined_width, joined_height)
                continue
        groups.append((first, last, width, height))
    batches = []
    for first, last, width, height in groups:
        per_batch = max(1, _BATCH_CANDIDATES // (width * height))
        for start in range(first, last, per_batch):
            batches.append((slice(start, min(start + per_batch, last)), width, height))
    return order, batches


def windows(
    columns: np.ndarray, rows: np.ndarray, max_columns: int, max_rows: int
) -> Iterator[tuple[np.ndarray, int, int]]:
    """Yield (indices, columns, rows) batches of `window_batches`."""
    order, batches = window_batches(columns, rows, max_columns, max_rows)
    for part, width, height in batches:
        yield order[part], width, height
