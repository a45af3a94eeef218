"""The output frame of a tracking video and the frame-chunk loop both render modes share.

`Canvas` is the frame the video is drawn into: the tracks' own size, or a fit letterboxed by the
project's one aspect policy (`das_core.tracking.video.letterbox_rect`). `render_chunks` draws the
source frames in chunks on a few threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from das_core.errors import DasError
from das_core.tracking.camera import project
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import letterbox_rect

_THREADS = 2
_PROJECT_BLOCK = 1 << 14  # points per matrix product (see `project_in_blocks`)


class RenderError(DasError):
    """A render request that cannot be met (wrong mode, no faces for mesh mode, bad frame count)."""


@dataclass(frozen=True)
class Canvas:
    """The output frame: `width` x `height`, with the camera's image scaled into the content
    rectangle at (`left`, `top`), `content_width` x `content_height` (all of it without a fit).
    `intrinsics` [T, 3, 3] are the tracks' camera intrinsics in content-rectangle pixels; the
    renderers draw at the content size, and `place` puts that into the canvas."""

    width: int
    height: int
    left: int
    top: int
    content_width: int
    content_height: int
    intrinsics: np.ndarray

    @classmethod
    def fitting(cls, tracks: Tracks, fit: tuple[int, int] | None) -> Canvas:
        """The canvas of `render_tracking(tracks, fit=fit)`: letterboxed with `letterbox_rect`."""
        if fit is None:
            fit = (tracks.width, tracks.height)
        if (
            not isinstance(fit, (tuple, list))
            or len(fit) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in fit)
        ):
            raise RenderError(f"fit must be (width, height) in whole pixels, both positive, got {fit!r}")
        width, height = int(fit[0]), int(fit[1])
        left, top, content_width, content_height = letterbox_rect(tracks.width, tracks.height, width, height)
        intrinsics = tracks.intrinsics
        if (content_width, content_height) != (tracks.width, tracks.height):
            # Pixel (x, y) of the camera's image lands at (x * sx, y * sy) of the content
            # rectangle, as `fit_frames` resizes an image: scale the first two rows of K.
            scale = np.array([content_width / tracks.width, content_height / tracks.height, 1.0])
            intrinsics = (intrinsics * scale[:, None]).astype(tracks.intrinsics.dtype)
        return cls(width, height, left, top, content_width, content_height, intrinsics)

    @property
    def seen(self) -> tuple[int, int, int, int]:
        """The content rectangle as (left, top, right, bottom) canvas pixels: what the camera saw."""
        return self.left, self.top, self.left + self.content_width, self.top + self.content_height

    def to_canvas(self, uv: np.ndarray) -> np.ndarray:
        """Content-rectangle pixel positions [N, 2] to canvas positions."""
        return uv + np.array([self.left, self.top], dtype=uv.dtype)

    def place(self, frames: np.ndarray) -> np.ndarray:
        """Frames drawn at the content size [T, h, w, 3] put into black canvases [T, H, W, 3]."""
        if (self.content_width, self.content_height) == (self.width, self.height):
            return frames
        canvas = np.zeros((len(frames), self.height, self.width, 3), dtype=np.uint8)
        canvas[:, self.top : self.top + self.content_height, self.left : self.left + self.content_width] = frames
        return canvas


def render_chunks(
    sources: np.ndarray,
    per_chunk: int,
    draw: Callable[[np.ndarray, np.ndarray], None],
    size: tuple[int, int],
    progress: bool,
) -> np.ndarray:
    """Draw the source frames in chunks of at most `per_chunk`, on up to `_THREADS` threads (numpy
    releases the GIL in its array loops): `draw(chunk, out)` sets every pixel of out, uint8
    [len(chunk), H, W, 3], uninitialised on entry (np.empty: numpy asks the kernel for huge pages
    for it, where np.zeros takes a page fault per 4 KB of the video). Returns uint8
    [len(sources), H, W, 3]. The chunks are of near-equal size and as many as a multiple of the
    threads, so no thread is left alone with a last one. With `progress`, a tqdm bar counts frames
    (tqdm is imported only then: Blender's Python, where the add-on renders, need not have it)."""
    frames = np.empty((len(sources), *size, 3), dtype=np.uint8)
    workers = max(1, min(_THREADS, os.cpu_count() or 1, len(sources)))
    count = -(-len(sources) // per_chunk)
    count = min(-(-count // workers) * workers, len(sources))
    bounds = np.linspace(0, len(sources), count + 1).round().astype(int).tolist()

    def run(first: int, last: int) -> int:
        draw(sources[first:last], frames[first:last])
        return last - first

    bar = _progress_bar(len(sources)) if progress else None
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(run, bounds[:-1], bounds[1:]):
                if bar is not None:
                    bar.update(done)
    finally:
        if bar is not None:
            bar.close()
    return frames


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="tracking video", unit="frame")


def project_in_blocks(
    points: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`camera.project` in blocks of `_PROJECT_BLOCK` points (the same numbers: every point is its
    own small product). OpenBLAS runs a bigger N x 3 x 3 product on several threads, which then
    busy-wait on the cores the renderer's threads are about to use."""
    splits = range(_PROJECT_BLOCK, len(points), _PROJECT_BLOCK)
    blocks = [project(block, world_to_camera, intrinsics) for block in np.split(points, splits)]
    return np.concatenate([uv for uv, _ in blocks]), np.concatenate([depth for _, depth in blocks])
