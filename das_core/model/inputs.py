"""The pipeline's picture inputs as float frames [T, 3, H, W] in [0, 1], from every form callers pass.

`image`, `tracking_image` and `tracking_video` accept what the DaS reference and diffusers' CogVideoX
pipelines accept: PIL images and lists of them, numpy arrays and torch tensors of one frame (HWC or CHW),
of frames (THWC or TCHW) or of one batch (1THWC, 1TCHW, or 1CTHW as the reference feeds its VAE); uint8
(0-255) or float. A float input with negative values is read as [-1, 1], as diffusers' image processor
does (the reference trainer's validation passes its tracking image that way); otherwise float is [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import torch

from das_core.errors import DasError

__all__ = ["to_unit_frame", "to_unit_frames"]

_FORMS = "a PIL image (or list of them), or a uint8 or float array/tensor in HWC, CHW, THWC or TCHW layout"


def to_unit_frames(value: Any, name: str, height: int, width: int, num_frames: int | None = None) -> torch.Tensor:
    """`value` as float32 [T, 3, H, W] in [0, 1], checked against the frame count (when given) and the size."""
    if value is None:
        raise DasError(f"{name} is missing: give {_FORMS}")
    frames = _as_frames(value, name)
    if frames.shape[0] == 0:
        raise DasError(f"{name} is empty: shape {tuple(frames.shape)}")
    count, _, got_height, got_width = frames.shape
    if num_frames is not None and count != num_frames:
        raise DasError(
            f"{name} has {count} frames but {num_frames} are needed; resample it with "
            "das_core.tracking.video.sample_indices"
        )
    if (got_height, got_width) != (height, width):
        raise DasError(
            f"{name} is {got_width} x {got_height} but the video is {width} x {height}; "
            "fit it with das_core.tracking.video.fit_frames (letterbox, never stretched)"
        )
    return frames


def to_unit_frame(value: Any, name: str, height: int, width: int) -> torch.Tensor:
    """One picture (a single frame in any accepted form) as float32 [1, 3, H, W] in [0, 1]."""
    frames = to_unit_frames(value, name, height, width)
    if frames.shape[0] != 1:
        raise DasError(f"{name} holds {frames.shape[0]} frames; give one picture (e.g. the first: video[:1])")
    return frames


def _as_frames(value: Any, name: str) -> torch.Tensor:
    """Any accepted form as float32 [T, 3, H, W] in [0, 1], before the count and size checks."""
    if isinstance(value, PIL.Image.Image):
        value = np.array(value.convert("RGB"))
    if isinstance(value, (list, tuple)):
        if not value:
            raise DasError(f"{name} is an empty list; give {_FORMS}")
        parts = [_as_frames(part, name) for part in value]
        if len({part.shape[1:] for part in parts}) != 1:
            raise DasError(f"{name} is a list of pictures of different sizes: {[tuple(p.shape[2:]) for p in parts]}")
        return torch.cat(parts)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.array(value))  # a copy: from_numpy warns on read-only arrays
    if not isinstance(value, torch.Tensor):
        raise DasError(f"{name} must be {_FORMS}; got {type(value).__name__}")
    return _to_unit_range(_channels_first(value.detach().cpu(), name), name)


def _channels_first(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """A 3-, 4- or 5-dimensional picture tensor as [T, 3, H, W] (values untouched)."""
    shape = tuple(tensor.shape)
    if tensor.ndim == 5:
        if shape[0] != 1:
            raise DasError(f"{name} is a batch of {shape[0]} videos (shape {shape}); give one")
        tensor = tensor[0]
        if tensor.shape[0] == 3 and 3 not in (tensor.shape[1], tensor.shape[-1]):  # [C, T, H, W], the VAE's layout
            tensor = tensor.permute(1, 0, 2, 3)
    elif tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    elif tensor.ndim != 4:
        raise DasError(f"{name} must be {_FORMS}; got shape {shape}")
    if tensor.shape[0] == 0:
        return tensor.new_zeros((0, 3, 0, 0))
    if tensor.shape[-1] == 3 and tensor.shape[1] != 3:
        return tensor.permute(0, 3, 1, 2)
    if tensor.shape[1] == 3:
        return tensor
    raise DasError(f"{name} must have 3 colour channels (RGB) first or last; got shape {shape}")


def _to_unit_range(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 0-255, float [0, 1] or float [-1, 1] as float32 [0, 1]."""
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    if not tensor.dtype.is_floating_point:
        raise DasError(f"{name} must be uint8 (0-255) or float ([0, 1] or [-1, 1]), got dtype {tensor.dtype}")
    tensor = tensor.float()
    if tensor.numel() == 0:
        return tensor
    low, high = float(tensor.min()), float(tensor.max())
    if 0.0 <= low and high <= 1.0:
        return tensor
    if -1.0 <= low and high <= 1.0:  # negative values: [-1, 1], as diffusers reads them
        return (tensor + 1.0) / 2.0
    raise DasError(
        f"float {name} must be in [0, 1] (or [-1, 1]), got values in [{low:.3f}, {high:.3f}]; "
        "divide 0-255 values by 255 or pass them as uint8"
    )
