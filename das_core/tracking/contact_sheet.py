"""Pictures for people: contact sheets of a video and side-by-side comparisons, as uint8 RGB arrays.

Every sheet is one `image_grid` of captioned thumbnails; each thumbnail is letterboxed with the
project's one aspect policy (`das_core.tracking.video.fit_frames`), so nothing is ever stretched.
"""

from __future__ import annotations

import numpy as np

from das_core.tracking.video import fit_frames, sample_indices

Cell = tuple[np.ndarray | None, str]  # (image uint8 [H, W, 3] or None for an empty cell, caption)

_GAP = 6
_CAPTION_HEIGHT = 20
_BACKGROUND = (24, 24, 28)
_TEXT = (230, 230, 230)


def image_grid(rows: list[list[Cell]], *, thumb_width: int = 240, thumb_height: int = 160) -> np.ndarray:
    """Lay out captioned thumbnails in rows (short rows are padded with empty cells)."""
    from PIL import Image, ImageDraw, ImageFont

    columns = max(len(row) for row in rows)
    cell_height = _CAPTION_HEIGHT + thumb_height
    width = _GAP + columns * (thumb_width + _GAP)
    height = _GAP + len(rows) * (cell_height + _GAP)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for r, row in enumerate(rows):
        for c, (image, caption) in enumerate(row):
            left, top = _GAP + c * (thumb_width + _GAP), _GAP + r * (cell_height + _GAP)
            if caption:
                draw.text((left + 2, top + 3), caption, fill=_TEXT, font=font)
            if image is not None:
                thumb = fit_frames(np.asarray(image), thumb_width, thumb_height, resample="bilinear")
                sheet.paste(Image.fromarray(thumb), (left, top + _CAPTION_HEIGHT))
    return np.asarray(sheet)


def contact_sheet(frames: np.ndarray, *, count: int = 8, columns: int = 4, thumb_width: int = 240) -> np.ndarray:
    """`count` evenly spaced frames of a video [T, H, W, 3], captioned with their frame index."""
    frames = np.asarray(frames)
    indices = sample_indices(len(frames), min(count, len(frames)))
    cells = [(frames[i], f"frame {i}") for i in indices]
    rows = [cells[start : start + columns] for start in range(0, len(cells), columns)]
    return image_grid(rows, thumb_width=thumb_width, thumb_height=_thumb_height(frames[0], thumb_width))


def comparison_sheet(
    reference: np.ndarray, tracking: np.ndarray, result: np.ndarray, *, count: int = 4, thumb_width: int = 240
) -> np.ndarray:
    """The reference image beside the tracking video (top row) and the result (bottom row) at the same times.

    Times are picked on the tracking video and mapped proportionally onto the result, which may
    have a different frame count.
    """
    tracking, result = np.asarray(tracking), np.asarray(result)
    picks = sample_indices(len(tracking), min(count, len(tracking)))
    mapped = [round(i * (len(result) - 1) / max(1, len(tracking) - 1)) for i in picks]
    rows = [
        [(reference, "reference image")] + [(tracking[i], f"tracking, frame {i}") for i in picks],
        [(None, "")] + [(result[j], f"result, frame {j}") for j in mapped],
    ]
    return image_grid(rows, thumb_width=thumb_width, thumb_height=_thumb_height(tracking[0], thumb_width))


def _thumb_height(frame: np.ndarray, thumb_width: int) -> int:
    """Thumbnail height that keeps `frame`'s aspect at `thumb_width` (even, at least 2)."""
    height, width = frame.shape[:2]
    return max(2, round(thumb_width * height / width / 2) * 2)
