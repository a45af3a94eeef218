"""A CPU preview without any model: the reference image warped along the tracking video.

In a DaS tracking video a covered pixel's R and G say where its surface point was in the first
frame (x = R / 255 * W, y = G / 255 * H). Each output pixel takes the reference image's colour
there; pixels that are black in the tracking video (nothing tracked) keep the reference image.
R and G have 256 levels, so the reference is first box-filtered into a 256 x 256 atlas (one cell
per R, G pair): every output pixel is then a single table look-up. Honest about what it is:
its metadata says `preview`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from das_core.tracking.video import fit_frames
from das_core.wire.protocol import JobRequest

COVERED_THRESHOLD = 8  # max channel above this counts as tracked (MP4 blacks are not exactly 0)


class PreviewBackend:
    """The `preview` backend: fast, CPU only, no torch."""

    name = "preview"

    def describe(self) -> dict:
        return {
            "backend": "preview",
            "model": "none (reference image warped along the tracking video)",
            "device": "cpu",
            "preview": True,
        }

    def generate(self, request: JobRequest, control) -> Iterator[np.ndarray]:
        tracking = np.asarray(request.tracking)
        height, width = tracking.shape[1:3]
        reference = fit_frames(np.asarray(request.image), width, height, resample="bilinear")
        atlas = position_atlas(reference)
        total = len(tracking)
        for index, frame in enumerate(tracking):
            if control.should_stop():
                return
            yield warp_frame(reference, atlas, frame)
            control.progress("warp", index + 1, total)


def position_atlas(reference: np.ndarray) -> np.ndarray:
    """[256, 256, 3] colours indexed by [G, R]: the reference averaged over each code's cell."""
    from PIL import Image

    cells = np.asarray(Image.fromarray(reference).resize((255, 255), Image.Resampling.BOX))
    return np.pad(cells, ((0, 1), (0, 1), (0, 0)), mode="edge")  # code 255 means the far edge


def warp_frame(reference: np.ndarray, atlas: np.ndarray, tracking_frame: np.ndarray) -> np.ndarray:
    """One output frame: atlas colour where the tracking frame is covered, reference elsewhere."""
    warped = atlas[tracking_frame[..., 1], tracking_frame[..., 0]]
    covered = tracking_frame.max(axis=-1) > COVERED_THRESHOLD
    return np.where(covered[..., None], warped, reference)
