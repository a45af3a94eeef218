"""Where each pixel of a tracking frame was at the first frame, found by matching its colour.

A tracked surface point keeps one colour in every frame, so the first tracking frame is a key from
colours to reference-image positions: a later pixel came from a first-frame pixel of the same
colour. Matching against that frame, not decoding R and G arithmetically, is what makes it exact:
the renderer interpolates colours across large triangles in linear light and fades them towards
black at vertices outside the first frame, so R / 255 * W can be off by hundreds of pixels, while
the first frame carries the same interpolation.

Every source found is a first-frame pixel whose colour is within `TOLERANCE` levels per channel
of the pixel's own, and not just behind a silhouette (the reference may draw edges a pixel or two
wider). Colours that occupy one compact place at the first frame anchor the match; the motion of the
anchors around a pixel then places it inside its colour's cell (no blocks of one colour) and
resolves colours that occur in several places. A pixel whose colour is not near its predicted
first-frame place was hidden there (behind a nearer surface: B, inverse depth, is part of the
colour) or outside the frame: it has no source.
"""

from __future__ import annotations

import numpy as np

COVERED_THRESHOLD = 8  # a pixel counts as tracked when a channel exceeds this (dark noise is not a colour)
ANCHOR_SPREAD = 12  # a colour whose first-frame pixels lie within this many pixels names one place
TOLERANCE = 2  # levels per channel by which a pixel and its first-frame source may differ
EDGE = 2  # pixels behind a first-frame silhouette that are never a source
EDGE_STEP = 8  # levels of B by which a surface within EDGE pixels is nearer at a silhouette
MOTION_WINDOWS = (15, 63, 255)  # neighbourhoods whose matched pixels predict a pixel's motion, nearest first
MOTION_SCALE = 2  # the motion field is averaged over every MOTION_SCALE-th pixel of every MOTION_SCALE-th row
PASSES = 2  # rounds of prediction: each round's matches help predict the next round's
_NEAR = sorted(
    ((r, g, b) for r in (-1, 0, 1) for g in (-1, 0, 1) for b in (-1, 0, 1)), key=lambda d: -sum(map(abs, d))
)  # colour offsets, written far to near so that a colour's own entry is written last and wins


def covered(frame: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels showing a tracked surface."""
    return np.maximum(np.maximum(frame[..., 0], frame[..., 1]), frame[..., 2]) > COVERED_THRESHOLD


def colour_keys(frame: np.ndarray) -> np.ndarray:
    """int32 [...]: each pixel's colour as one number."""
    frame = frame.astype(np.int32)
    return (frame[..., 0] << 16) | (frame[..., 1] << 8) | frame[..., 2]


def nearness(frame: np.ndarray, tracked: np.ndarray) -> np.ndarray:
    """int16 [H, W]: 0 where untracked, else 1 + B (inverse depth): larger is nearer."""
    return np.where(tracked, frame[..., 2].astype(np.int16) + 1, np.int16(0))


def square(radius: int) -> np.ndarray:
    """An OpenCV structuring element: the (2 radius + 1)-pixel square."""
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))


def behind_edges(frame: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels within EDGE of a surface nearer by more than EDGE_STEP (untracked is farthest).

    The reference may draw that nearer surface's edge a pixel or two wider than the tracking video."""
    import cv2

    depth = nearness(frame, covered(frame))
    return depth < cv2.dilate(depth, square(EDGE)) - EDGE_STEP


class FirstFrameColours:
    """The first tracking frame, and the place (x, y) each of its compact colours names."""

    def __init__(self, first: np.ndarray) -> None:
        import cv2

        self.height, self.width = first.shape[:2]
        self.frame = first.astype(np.int16)
        self.keys = colour_keys(first)
        self.covered = covered(first)
        # Tracked, or near enough that the reference may draw the tracked surface's edge there.
        self.covered_or_edge = cv2.dilate(self.covered.astype(np.uint8), square(EDGE)).astype(bool)
        self.usable = self.covered & ~behind_edges(first)
        self.pixel = np.stack(np.meshgrid(np.arange(self.width), np.arange(self.height)), axis=-1).astype(np.float32)
        y, x = np.nonzero(self.usable)
        colours, index, counts = np.unique(self.keys[y, x], return_inverse=True, return_counts=True)
        centre = np.stack([np.bincount(index, x), np.bincount(index, y)], axis=1) / counts[:, None]
        # Each colour's place is its member nearest the centroid: a real member, even of a ring-shaped cell.
        order = np.lexsort((np.hypot(x - centre[index, 0], y - centre[index, 1]), index))
        first_member = order[np.searchsorted(index[order], np.arange(len(colours)))]
        self.place = np.stack([x[first_member], y[first_member]], axis=1).astype(np.float32)
        self.anchor = np.ones(len(colours), dtype=bool)
        for axis in (x, y):
            low, high = np.full(len(colours), np.inf), np.full(len(colours), -np.inf)
            np.minimum.at(low, index, axis)
            np.maximum.at(high, index, axis)
            self.anchor &= high - low <= ANCHOR_SPREAD
        self.table = _nearest_colour_table(colours)

    def sources(self, frame: np.ndarray, tracked: np.ndarray) -> np.ndarray:
        """float32 [H, W, 2]: each pixel's first-frame (x, y); NaN where it has none (untracked or hidden).
        `tracked` is `covered(frame)`."""
        import cv2

        keys = colour_keys(frame)
        source = np.full((self.height, self.width, 2), np.nan, dtype=np.float32)
        # The same colour in the same place stayed (behind a silhouette only if all around it stayed too).
        same = (tracked & self.covered & (keys == self.keys)).astype(np.uint8)
        still = same.astype(bool) & (self.usable | cv2.erode(same, square(EDGE)).astype(bool))
        source[still] = self.pixel[still]

        rows, columns = np.nonzero(tracked & ~still)
        colours = frame[rows, columns]
        match = self.table[keys[rows, columns]]
        anchored = match >= 0
        anchored[anchored] = self.anchor[match[anchored]]
        source[rows[anchored], columns[anchored]] = self.place[match[anchored]]
        pending = np.ones(len(rows), dtype=bool)
        for _ in range(PASSES):
            if not pending.any():
                break
            predicted = self.pixel[rows, columns] + _local_motion(source, self.pixel)[rows, columns]
            fits = pending & self.matches(colours, predicted)
            source[rows[fits], columns[fits]] = predicted[fits]
            pending &= ~fits
        return source

    def matches(self, colours: np.ndarray, places: np.ndarray) -> np.ndarray:
        """bool [N]: the first-frame pixel at each place (x, y) is usable and within TOLERANCE of the colour."""
        x = np.clip(np.rint(places[:, 0]), 0, self.width - 1).astype(np.intp)
        y = np.clip(np.rint(places[:, 1]), 0, self.height - 1).astype(np.intp)
        close = np.abs(self.frame[y, x] - colours.astype(np.int16)).max(axis=-1) <= TOLERANCE
        return close & self.usable[y, x]


def _nearest_colour_table(colours: np.ndarray) -> np.ndarray:
    """int32 [2**24]: for every colour, the index into sorted `colours` of the nearest one within one
    level per channel (the colour itself first), -1 where there is none."""
    table = np.full(1 << 24, -1, dtype=np.int32)
    index = np.arange(len(colours), dtype=np.int32)
    channels = [(colours >> shift) & 255 for shift in (16, 8, 0)]
    for offset in _NEAR:
        shifted = [channel + delta for channel, delta in zip(channels, offset)]
        valid = np.all([(c >= 0) & (c <= 255) for c in shifted], axis=0)
        table[((shifted[0] << 16) | (shifted[1] << 8) | shifted[2])[valid]] = index[valid]
    return table


def _local_motion(source: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """float32 [H, W, 2]: the mean displacement (source - pixel) of the pixels with a source around
    each, from the nearest of MOTION_WINDOWS that holds any (averaged over every MOTION_SCALE-th pixel)."""
    import cv2

    height, width = pixel.shape[:2]
    shift = np.ascontiguousarray(source[::MOTION_SCALE, ::MOTION_SCALE])
    shift -= pixel[::MOTION_SCALE, ::MOTION_SCALE]
    known = (~np.isnan(shift[..., 0])).astype(np.float32)
    np.nan_to_num(shift, copy=False, nan=0.0)
    motion = np.zeros_like(shift)
    for window in reversed(MOTION_WINDOWS):  # coarse to fine: each finer window that holds any overrides
        side = max(1, round(window / MOTION_SCALE))
        weight = cv2.blur(known, (side, side))[..., None]
        mean = cv2.blur(shift, (side, side)) / np.maximum(weight, 1e-6)
        motion = np.where(weight > 1e-6, mean, motion)
    return cv2.resize(motion, (width, height), interpolation=cv2.INTER_LINEAR)
