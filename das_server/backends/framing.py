"""Getting a request's frames to a model's fixed size and length, and the results back to the request's.

Both directions use the project's one aspect policy (`das_core.tracking.video.fit_frames`: letterbox, never
stretch): inputs are letterboxed to the model size, results are cropped to the same box and scaled
back, so a 720x480 request to a 720x480 model passes through untouched. In time, a control shorter
than the model's window (a shot's last window, a short shot) is never stretched: its last frame is
held to fill the window (`model_frame_indices`) and only its own frames are returned.
"""

from __future__ import annotations

import numpy as np

from das_core.tracking.video import fit_frames, letterbox_rect, model_frame_indices


def to_model_size(
    request_image: np.ndarray, tracking: np.ndarray, width: int, height: int, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference image (bilinear) and tracking video (nearest, fitted to `num_frames` by `model_frame_indices`)
    at the model size."""
    tracking = tracking[model_frame_indices(len(tracking), num_frames)]
    image = fit_frames(request_image, width, height, resample="bilinear")
    return image, fit_frames(tracking, width, height, resample="nearest")


def from_model_size(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Undo `to_model_size` on result frames [T, h, w, 3]: crop the letterbox, scale to width x height."""
    from PIL import Image

    model_height, model_width = frames.shape[1:3]
    if (model_width, model_height) == (width, height):
        return frames
    left, top, box_width, box_height = letterbox_rect(width, height, model_width, model_height)
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for target, frame in zip(out, frames):
        crop = Image.fromarray(frame[top : top + box_height, left : left + box_width])
        target[:] = np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR))
    return out


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Pipeline output (float in [0, 1], as output_type="np" gives it) to uint8 frames."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
