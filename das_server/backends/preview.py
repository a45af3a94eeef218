"""A CPU preview without any model: the reference image warped along the tracking video.

Frame 0 is the reference image itself. In every later frame a pixel that shows a tracked surface
takes the reference's colour where that surface was at the first frame (a backward warp; the
places come from `first_frame.FirstFrameColours`, which matches tracking colours exactly against
the first tracking frame). Untracked pixels that were untracked at the first frame too keep the
reference (a static backdrop). What is left has no source: surfaces hidden at the first frame and
places something tracked moved away from. Those holes are inpainted with OpenCV from the pixels
around them that are not nearer, so nothing is left where it was and no occluder smears into what
it uncovered. Honest about what it is: its metadata says `preview`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from das_core.tracking.video import fit_frames
from das_core.tracking.window import DAS_WINDOW
from das_core.wire.protocol import JobRequest
from das_server.backends.first_frame import FirstFrameColours, covered, nearness, square

INPAINT_RADIUS = 3
OCCLUDER_REACH = 20  # how far around a hole nearer surfaces are kept out of its fill
OCCLUDER_MARGIN = 8  # levels of B by which a surface counts as nearer than a hole


class PreviewBackend:
    """The `preview` backend: fast, CPU only, no torch."""

    name = "preview"
    window = DAS_WINDOW  # it reads tracking videos as DaS does

    def describe(self) -> dict:
        return {
            "backend": "preview",
            "model": "none (reference image warped along the tracking video)",
            "device": "cpu",
            "preview": True,
        }

    def generate(self, request: JobRequest, control) -> Iterator[np.ndarray]:
        tracking = request.tracking_video()
        height, width = tracking.shape[1:3]
        reference = fit_frames(np.asarray(request.image), width, height, resample="bilinear")
        first = FirstFrameColours(tracking[0])
        total = len(tracking)
        for index, frame in enumerate(tracking):
            if control.should_stop():
                return
            yield reference.copy() if index == 0 else warp_frame(reference, first, frame)
            control.progress("warp", index + 1, total)


def warp_frame(reference: np.ndarray, first: FirstFrameColours, frame: np.ndarray) -> np.ndarray:
    """One output frame: the reference sampled at each pixel's first-frame place, holes inpainted."""
    import cv2

    tracked = covered(frame)
    source = first.sources(frame, tracked)
    found = ~np.isnan(source[..., 0])
    np.nan_to_num(source, copy=False, nan=0.0)
    out = cv2.remap(reference, source[..., 0], source[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    backdrop = ~tracked & ~first.covered_or_edge
    np.copyto(out, reference, where=backdrop[..., None])
    return fill_holes(out, ~found & ~backdrop, nearness(frame, tracked))


def fill_holes(image: np.ndarray, holes: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Inpaint `holes` from the pixels around them that are not nearer (`depth`: `first_frame.nearness`).

    A hole is what an occluder uncovered, so the occluder's colours do not belong in it. Untracked
    holes (backdrop uncovered) are filled first, from the backdrop alone; then tracked holes (a
    surface uncovered), from the tracked surfaces around them that are not nearer.
    """
    import cv2

    far = holes & (depth == 0)
    if far.any():
        image = _inpaint(image, far, keep_out=(depth > 0) | holes)
    tracked = holes & ~far
    if tracked.any():
        hole_depth = cv2.dilate(np.where(tracked, depth, np.int16(0)), square(OCCLUDER_REACH))
        image = _inpaint(image, tracked, keep_out=(depth == 0) | (depth > hole_depth + OCCLUDER_MARGIN))
    return image


def _inpaint(image: np.ndarray, holes: np.ndarray, keep_out: np.ndarray) -> np.ndarray:
    """cv2.inpaint `holes` without drawing from the `keep_out` pixels near them, which stay as they are.

    Only the box around the holes is processed: inpainting cost grows with the image, not the holes."""
    import cv2

    near = cv2.dilate(holes.astype(np.uint8), square(OCCLUDER_REACH)).astype(bool)
    mask = holes | (keep_out & near)
    rows, columns = np.nonzero(mask)
    pad = INPAINT_RADIUS + 1
    top, left = max(rows.min() - pad, 0), max(columns.min() - pad, 0)
    box = slice(top, rows.max() + pad + 1), slice(left, columns.max() + pad + 1)
    filled = image.copy()
    filled[box] = cv2.inpaint(image[box], mask[box].astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
    kept = mask & ~holes
    filled[kept] = image[kept]
    return filled
