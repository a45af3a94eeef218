"""One picture to geometry: image + depth + camera -> a textured triangle mesh, the proxy.

The image is cut into cells of `step` x `step` pixels; each cell is a quad (two triangles) whose
corners are unprojected through the camera at the depth of the cells around them, with texture
coordinates onto the image. Seen through that camera the mesh covers the picture exactly, cell
for cell, so at frame 0 it renders as the image itself.

Two neighbouring cells are connected only when their depths differ by less than `edge` (a
fraction of the farther one): across a depth discontinuity they get their own copies of the
corner vertices, so foreground and background come apart while the first view stays gapless. Each
connected set of cells is a part (part 0 the largest); the add-on turns each large part into its
own object.

Coordinates are the frame-0 camera's, OpenCV convention (x right, y down, z forward): the world
of a proxy's `Tracks` is that camera's space, so a camera path is a list of world_to_camera
matrices relative to the first view (`camera_motion`). Depth is the z distance along the camera
axis, not the distance to the camera centre.

Scale: metric depth is kept. Relative depth (up to an unknown scale) is scaled so its median is
`RELATIVE_MEDIAN_DEPTH` = 1 unit: a 1-unit camera move equals the distance to the typical surface,
and DaS's example moves (0.1 to 0.5) are gentle to strong. Without a field of view the camera
gets `DEFAULT_FOV_DEG` across the image's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from das_core.errors import DasError
from das_core.tracking.tracks import Tracks

__all__ = [
    "DEFAULT_EDGE",
    "DEFAULT_FOV_DEG",
    "DEFAULT_STEP",
    "RELATIVE_MEDIAN_DEPTH",
    "Proxy",
    "ProxyError",
    "blender_camera_matrices",
    "build_proxy",
    "intrinsics_from_fov",
    "read_depth",
]

DEFAULT_FOV_DEG = 60.0  # horizontal; a common phone or 28 mm lens
DEFAULT_STEP = 4  # pixels per cell side
DEFAULT_EDGE = 0.08  # neighbouring cells whose depths differ by more than this fraction come apart
RELATIVE_MEDIAN_DEPTH = 1.0

# Frame-0 camera space (OpenCV) to Blender's world: the first camera sits at the origin looking
# along +Y with +Z up (rotation 90 degrees about X), so x stays, y (down) becomes -Z, z becomes +Y.
OPENCV_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])
_BLENDER_CAMERA_AXES = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes to Blender's (looking down -Z)


class ProxyError(DasError):
    """An image, depth map or camera that cannot make a proxy; the message names which."""


@dataclass(frozen=True)
class Proxy:
    """A triangle mesh in frame-0 camera space (OpenCV), textured by the image it was built from."""

    vertices: np.ndarray  # float32 [N, 3]
    faces: np.ndarray  # int32 [F, 3], counter-clockwise as seen from the camera (normals face it)
    uvs: np.ndarray  # float32 [N, 2]: u = x / width, v = 1 - y / height (Blender's, bottom row v = 0)
    face_parts: np.ndarray  # int32 [F]: the connected part of each face, 0 the largest
    intrinsics: np.ndarray  # float64 [3, 3], pixels of a width x height image
    width: int
    height: int

    @property
    def num_parts(self) -> int:
        return int(self.face_parts.max()) + 1 if len(self.face_parts) else 0

    def part_sizes(self) -> np.ndarray:
        """Faces per part, in part order (largest first)."""
        return np.bincount(self.face_parts, minlength=self.num_parts)

    def submesh(self, parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices, faces, uvs) of the faces whose part is in `parts`, vertices renumbered from 0."""
        faces = self.faces[np.isin(self.face_parts, np.asarray(parts))]
        used, inverse = np.unique(faces, return_inverse=True)
        return self.vertices[used], inverse.reshape(-1, 3).astype(np.int32), self.uvs[used]

    def tracks(self, world_to_camera: np.ndarray, *, fps: float = 8.0) -> Tracks:
        """The proxy standing still while the camera follows `world_to_camera` [T, 4, 4] (frame-0 camera space)."""
        poses = np.asarray(world_to_camera, dtype=np.float32)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4):
            raise ProxyError(f"world_to_camera must be [T, 4, 4] matrices, got {list(poses.shape)}")
        count = len(poses)
        return Tracks(
            points=np.broadcast_to(self.vertices, (count, *self.vertices.shape)),
            world_to_camera=poses,
            intrinsics=np.broadcast_to(self.intrinsics, (count, 3, 3)),
            width=self.width,
            height=self.height,
            faces=self.faces,
            fps=fps,
            extra={"source": "image proxy", "parts": int(self.num_parts)},
        )


def blender_camera_matrices(world_to_camera: np.ndarray) -> np.ndarray:
    """Blender `matrix_world`s [T, 4, 4] of a camera path given as world_to_camera in frame-0 camera space."""
    poses = np.asarray(world_to_camera, dtype=np.float64)
    return OPENCV_TO_BLENDER @ np.linalg.inv(poses) @ _BLENDER_CAMERA_AXES


def intrinsics_from_fov(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """Pinhole intrinsics (square pixels, centred) for a horizontal field of view of `fov_deg` degrees."""
    if not (math.isfinite(fov_deg) and 1.0 <= fov_deg <= 170.0):
        raise ProxyError(f"field of view is {fov_deg!r} degrees; give one from 1 to 170 (60 suits most photos)")
    focal = width / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def build_proxy(
    depth: np.ndarray,
    intrinsics: np.ndarray | None = None,
    *,
    metric: bool = True,
    step: int = DEFAULT_STEP,
    edge: float = DEFAULT_EDGE,
) -> Proxy:
    """The proxy of a [H, W] depth map (z along the camera axis) seen through `intrinsics`.

    `intrinsics` default to `intrinsics_from_fov(W, H)`. Pixels whose depth is not a positive
    finite number (sky in some models) leave holes where a whole cell has none. `metric=False`
    rescales the depth to a median of `RELATIVE_MEDIAN_DEPTH`.
    """
    depth = _checked_depth(depth)
    height, width = depth.shape
    if isinstance(step, bool) or int(step) != step or not 1 <= step <= min(height, width):
        raise ProxyError(f"step is {step!r}; use a whole number of pixels from 1 to {min(height, width)}")
    if not (math.isfinite(edge) and edge > 0):
        raise ProxyError(f"edge is {edge!r}; use a positive fraction such as {DEFAULT_EDGE}")
    camera = intrinsics_from_fov(width, height) if intrinsics is None else np.asarray(intrinsics, np.float64)
    if camera.shape != (3, 3) or not np.isfinite(camera).all() or camera[0, 0] <= 0 or camera[1, 1] <= 0:
        raise ProxyError("intrinsics must be a finite 3x3 pinhole matrix with positive focal lengths")
    if not metric:
        depth = depth * (RELATIVE_MEDIAN_DEPTH / float(np.nanmedian(depth)))

    nearness = _cell_nearness(1.0 / depth, int(step))  # inverse depth is affine across a plane's image
    labels = _parts(nearness, edge)
    return _mesh(nearness, labels, int(step), width, height, camera)


def read_depth(path, width: int, height: int) -> np.ndarray:
    """A depth map saved with `numpy.save` (float [H, W], z along the camera axis), checked to be `width` x `height`."""
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ProxyError(
            f"cannot read depth file {path} ({error}); save the depth as a [H, W] array with numpy.save"
        ) from None
    depth = _checked_depth(depth)
    if depth.shape != (height, width):
        raise ProxyError(
            f"depth file {path} is {depth.shape[1]}x{depth.shape[0]}, the image is {width}x{height}; "
            "give a depth map at the image's size"
        )
    return depth


def _checked_depth(depth: np.ndarray) -> np.ndarray:
    array = np.asarray(depth)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2 or array.dtype.kind not in "fiu" or min(array.shape) < 1:
        raise ProxyError(f"depth must be a [H, W] array of numbers, got {array.dtype} {list(array.shape)}")
    array = array.astype(np.float64)
    valid = np.isfinite(array) & (array > 0)
    if not valid.any():
        raise ProxyError("the depth map has no positive finite value; check that it is depth, not a mask")
    return np.where(valid, array, np.nan)


def _cell_nearness(nearness: np.ndarray, step: int) -> np.ndarray:
    """Mean inverse depth of each step x step cell (NaN where the cell has no valid pixel)."""
    height, width = nearness.shape
    rows, cols = -(-height // step), -(-width // step)
    padded = np.full((rows * step, cols * step), np.nan)
    padded[:height, :width] = nearness
    blocks = padded.reshape(rows, step, cols, step)
    valid = np.isfinite(blocks)
    counts = valid.sum(axis=(1, 3))
    sums = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _parts(nearness: np.ndarray, edge: float) -> np.ndarray:
    """Connected parts of the cell grid: int [rows, cols], -1 for empty cells, 0 the largest part."""
    rows, cols = nearness.shape
    links = []  # pairs of flat cell indices that are connected
    index = np.arange(rows * cols).reshape(rows, cols)
    for a, b, na, nb in (
        (index[:, :-1], index[:, 1:], nearness[:, :-1], nearness[:, 1:]),
        (index[:-1, :], index[1:, :], nearness[:-1, :], nearness[1:, :]),
    ):
        with np.errstate(invalid="ignore"):
            # 1 - near/far in depth equals the gap between the inverse depths over the larger one.
            joined = np.abs(na - nb) <= edge * np.maximum(na, nb)
        links.append(np.stack([a[joined], b[joined]], axis=1))
    pairs = np.concatenate(links)
    label = index.reshape(-1).copy()
    while True:  # min-label propagation with pointer jumping: a few dozen passes on any image
        before = label.copy()
        smaller = np.minimum(label[pairs[:, 0]], label[pairs[:, 1]])
        np.minimum.at(label, pairs[:, 0], smaller)
        np.minimum.at(label, pairs[:, 1], smaller)
        label = label[label]
        if np.array_equal(label, before):
            break
    empty = ~np.isfinite(nearness.reshape(-1))
    roots, compact, sizes = np.unique(label[~empty], return_inverse=True, return_counts=True)
    rank = np.empty(len(roots), dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(roots))
    parts = np.full(rows * cols, -1, dtype=np.int64)
    parts[~empty] = rank[compact]
    return parts.reshape(rows, cols)


def _mesh(nearness: np.ndarray, labels: np.ndarray, step: int, width: int, height: int, camera: np.ndarray) -> Proxy:
    """Vertices per (corner, part), at the mean inverse depth of that part's cells around the corner."""
    cols = nearness.shape[1]
    cell_rows, cell_cols = np.nonzero(labels >= 0)
    cell_part = labels[cell_rows, cell_cols]
    cell_near = nearness[cell_rows, cell_cols]
    # Corners of each cell in the order top-left, top-right, bottom-left, bottom-right.
    corner_rows = cell_rows[:, None] + np.array([0, 0, 1, 1])
    corner_cols = cell_cols[:, None] + np.array([0, 1, 0, 1])
    corner = corner_rows * (cols + 1) + corner_cols
    keys = corner * (int(cell_part.max()) + 1) + cell_part[:, None]
    unique_keys, vertex_of = np.unique(keys.reshape(-1), return_inverse=True)
    vertex_of = vertex_of.reshape(-1, 4)
    near = np.bincount(vertex_of.reshape(-1), np.repeat(cell_near, 4)) / np.bincount(vertex_of.reshape(-1))

    vertex_corner = unique_keys // (int(cell_part.max()) + 1)
    x = np.minimum((vertex_corner % (cols + 1)) * step, width).astype(np.float64)
    y = np.minimum((vertex_corner // (cols + 1)) * step, height).astype(np.float64)
    z = 1.0 / near
    vertices = np.stack([(x - camera[0, 2]) * z / camera[0, 0], (y - camera[1, 2]) * z / camera[1, 1], z], axis=1)
    uvs = np.stack([x / width, 1.0 - y / height], axis=1)
    # With y down, (top-left, bottom-left, top-right) turns counter-clockwise as the camera sees it.
    top_left, top_right, bottom_left, bottom_right = vertex_of.T
    faces = np.concatenate(
        [np.stack([top_left, bottom_left, top_right], 1), np.stack([top_right, bottom_left, bottom_right], 1)]
    )
    return Proxy(
        vertices=vertices.astype(np.float32),
        faces=faces.astype(np.int32),
        uvs=uvs.astype(np.float32),
        face_parts=np.concatenate([cell_part, cell_part]).astype(np.int32),
        intrinsics=camera,
        width=width,
        height=height,
    )
