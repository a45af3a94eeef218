"""The DaS colour encoding: each tracked point's ONE colour, taken from where it is at the first frame.

R says where a point starts horizontally, G vertically (0 at the top), B how near it starts
(inverse distance, normalised between the 2nd and 98th percentiles; near is bright). Colours are
8-bit, written as round-down(v * 255). The mesh renderer's reference encoding treats vertex colours
as sRGB-encoded values, decoded to linear light before interpolating, as Blender does with a
vertex-colour layer; its exact encoding computes each pixel's colour itself (`render.shading`).
ENCODING.md beside this module states the encoding; the three functions below are its three paths
(mesh vertices, SpatialTracker, CoTracker), `inverse_range` the B range they share.
Numpy only, so Blender's Python can use it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SRGB8_TABLE",
    "SRGB8_TABLE_SIZE",
    "cotracker_colors",
    "inverse_range",
    "mesh_vertex_colors",
    "normalised_inverse",
    "spatialtracker_colors",
    "srgb8_to_linear",
]


def inverse_range(values: np.ndarray) -> tuple[float, float]:
    """(lo, hi): the 2nd and 98th percentiles of `1 / values` (all positive, at least one), the
    range the B channel spans."""
    lo, hi = np.percentile(1.0 / np.asarray(values, dtype=np.float64), [2, 98])
    return float(lo), float(hi)


def normalised_inverse(values: np.ndarray) -> np.ndarray:
    """B channel in [0, 1]: `1 / values` scaled between its 2nd and 98th percentiles
    (`inverse_range`), clipped.

    All values must be positive. When the percentiles coincide (every point equally far) the
    result is 0, as matplotlib's `Normalize` gives in the reference.
    """
    inverse = 1.0 / np.asarray(values, dtype=np.float64)
    if inverse.size == 0:
        return inverse
    lo, hi = inverse_range(values)
    if hi <= lo:
        return np.zeros_like(inverse)
    return np.clip((inverse - lo) / (hi - lo), 0.0, 1.0)


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """round-down(v * 255) of values clipped to [0, 1], as the reference writes colours."""
    return np.floor(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def mesh_vertex_colors(
    uv: np.ndarray,
    depth: np.ndarray,
    distance: np.ndarray,
    width: int,
    height: int,
    *,
    seen: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """The mesh path's vertex colours, uint8 sRGB [N, 3], from first-frame projections.

    `uv` [N, 2] pixels of the `width` x `height` frame and `depth` [N] (camera z) come from
    `camera.project` at the first frame; `distance` [N] is each vertex's Euclidean distance to the
    camera centre. R = x / width, G = y / height. B is normalised over ALL vertices (as the
    reference does over every mesh vertex of the scene). A vertex at/behind the camera plane or
    outside the part of the frame the camera saw is black: `seen` = (left, top, right, bottom),
    the whole frame by default, the content rectangle of a letterboxed one.
    """
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    left, top, right, bottom = (0, 0, width, height) if seen is None else seen
    with np.errstate(invalid="ignore"):
        inside = (depth > 0) & (uv[:, 0] >= left) & (uv[:, 0] <= right) & (uv[:, 1] >= top) & (uv[:, 1] <= bottom)
    rgb = np.stack([uv[:, 0] / width, uv[:, 1] / height, normalised_inverse(np.maximum(distance, 1e-12))], axis=1)
    colors = _to_8bit(np.where(inside[:, None], rgb, 0.0))
    return colors


def spatialtracker_colors(uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """SpatialTracker-style point colours, uint8 [N, 3]: R, G min-max normalised over the points'
    first-frame x and y; B the normalised inverse depth. All points must be in front (depth > 0)."""
    uv = np.asarray(uv, dtype=np.float64)
    channels = []
    for axis in (0, 1):
        lo, hi = (uv[:, axis].min(), uv[:, axis].max()) if len(uv) else (0.0, 0.0)
        channels.append((uv[:, axis] - lo) / (hi - lo) if hi > lo else np.zeros(len(uv)))
    channels.append(normalised_inverse(depth))
    return _to_8bit(np.stack(channels, axis=1))


def cotracker_colors(uv: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """CoTracker-style point colours, uint8 [N, 3]: R = x / W and G = y / H clipped to [0, 1];
    B the normalised inverse depth. All points must be in front (depth > 0)."""
    uv = np.asarray(uv, dtype=np.float64)
    rgb = np.stack([uv[:, 0] / width, uv[:, 1] / height, normalised_inverse(depth)], axis=1)
    return _to_8bit(rgb)


def _srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """The sRGB transfer function's inverse (IEC 61966-2-1), encoded [0, 1] -> linear [0, 1]."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function, linear [0, 1] -> encoded [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


_DECODE_LUT = _srgb_decode(np.arange(256) / 255.0).astype(np.float32)

# Linear light to 8-bit sRGB by table (the renderer indexes it with linear * SIZE): entry i holds
# the level of linear values in [i, i + 1) / SIZE (their midpoint, encoded and rounded to nearest
# as Blender's byte output does).
# The sRGB curve's steepest slope is 12.92, so a bin spans under 0.05 levels: a value is off by
# one only within 0.025 levels of a rounding boundary, and an exact level maps to itself.
SRGB8_TABLE_SIZE = 1 << 16
SRGB8_TABLE = np.round(_srgb_encode((np.arange(SRGB8_TABLE_SIZE) + 0.5) / SRGB8_TABLE_SIZE) * 255).astype(np.uint8)


def srgb8_to_linear(colors: np.ndarray) -> np.ndarray:
    """8-bit sRGB values to linear light, float32 in [0, 1] (exact table lookup)."""
    return _DECODE_LUT[np.asarray(colors, dtype=np.uint8)]
