"""Point tracks with visibility, the control of track-driven video models (Wan-Move), from a Tracks mesh.

`point_tracks` samples points on the surfaces seen in the first frame, on a pixel grid of the
output image: under each grid pixel's centre, the nearest triangle (a depth test at frame 0) and
where on it (barycentric coordinates); with `objects`, only the points on those objects are kept
(the whole scene still hides them). Each point then moves with its triangle's vertices, so it
stays on the same spot of the surface in every frame, and is projected into the output image.
A point is invisible in a frame when it is behind the camera, outside the camera's frame, on an
object not rendered then (`Tracks.visibility`), or hidden by a nearer surface (a depth test
against that frame's z-buffer, `das_core.tracking.depth_buffer`).

Positions are pixels of the output image, (0, 0) its top-left corner. An output whose aspect
differs from the camera's is letterboxed as everywhere in das (`video.letterbox_rect`): the
camera's image is scaled to fit and centred, and the bars count as outside the frame. Frames are
sampled from the scene's frames with `video.sample_indices`, as the DaS tracking video is.

`wan_move_arrays` gives the arrays as Wan-Move's `generate.py --track --track_visibility` loads
them; `draw_point_tracks` draws them for eyes. Numpy and Pillow only (it runs inside Blender).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from das_core.errors import DasError
from das_core.tracking.depth_buffer import rasterise_depth
from das_core.tracking.render import NEAR_PLANE
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import letterbox_rect, sample_indices
from das_core.tracking.window import WAN_MOVE_WINDOW

__all__ = ["PointTracks", "PointTracksError", "draw_point_tracks", "point_tracks", "wan_move_arrays"]

DEPTH_TOLERANCE = 0.01  # a point counts as hidden when a surface is this fraction of its depth nearer


class PointTracksError(DasError):
    """A point-track request that cannot be met (no faces, bad spacing or size, nothing visible)."""


@dataclass(frozen=True)
class PointTracks:
    """N points over T output frames in a `width` x `height` image.

    `xy` float32 [T, N, 2] are pixel positions (x right, y down; (0, 0) the image's top-left
    corner). `visible` bool [T, N]. Behind the camera a point has no position: it keeps its last
    one from a frame where it was in front (and is invisible). `source_frames` int [T] are the
    indices of the tracks' frames each output frame shows.
    """

    xy: np.ndarray
    visible: np.ndarray
    width: int
    height: int
    source_frames: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.xy.shape[0]

    @property
    def num_points(self) -> int:
        return self.xy.shape[1]


def point_tracks(
    tracks: Tracks,
    num_frames: int = WAN_MOVE_WINDOW.frames,
    size: tuple[int, int] = WAN_MOVE_WINDOW.size,
    spacing: int = 16,
    *,
    objects: Sequence[str] | None = None,
    depth_tolerance: float = DEPTH_TOLERANCE,
    progress: bool = False,
) -> PointTracks:
    """Track grid points on the surfaces of `tracks` (needs faces) seen in its first frame.

    The grid has one pixel every `spacing` output pixels in x and y, centred in the camera's part
    of the `size` = (width, height) output; a grid pixel whose centre shows no surface gives no
    point. `objects` (names in `tracks.extra["objects"]`) keeps only the points on those objects;
    the others still hide them. `num_frames` output frames are sampled evenly from the tracks'
    frames (first and last included). `depth_tolerance` is relative: another surface under the
    point's pixel hides it when the point's depth exceeds that surface's depth times (1 + tolerance).
    `progress` shows a tqdm bar over the frames rasterised.
    """
    width, height = _check_request(tracks, num_frames, size, spacing, depth_tolerance)
    chosen = _chosen_vertices(tracks, objects)
    left, top, content_width, content_height = letterbox_rect(tracks.width, tracks.height, width, height)
    region = (left, top, left + content_width, top + content_height)
    intrinsics = _canvas_intrinsics(tracks, (left, top, content_width, content_height))
    sources, where = np.unique(sample_indices(tracks.num_frames, num_frames), return_inverse=True)

    triangle, weights = _first_frame_points(tracks, intrinsics[0], (width, height), region, spacing, chosen)

    xy = np.empty((len(sources), len(triangle), 2))
    visible = np.empty((len(sources), len(triangle)), dtype=bool)
    for index, source in enumerate(_frames(sources, progress)):
        xy[index], visible[index] = _track_frame(
            tracks, source, intrinsics[source], (width, height), region, triangle, weights, depth_tolerance
        )
        if index:  # behind the camera: keep the last position (frame 0 is always in front)
            behind = np.isnan(xy[index, :, 0])
            xy[index, behind] = xy[index - 1, behind]

    order = where.reshape(-1)
    return PointTracks(
        xy=xy[order].astype(np.float32),
        visible=visible[order],
        width=width,
        height=height,
        source_frames=sources[order],
    )


def _first_frame_points(
    tracks: Tracks,
    intrinsics: np.ndarray,
    size: tuple[int, int],
    region: tuple[int, int, int, int],
    spacing: int,
    chosen: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The grid points' triangles [N] and barycentric weights [N, 3], from the whole scene's depth
    buffer at frame 0, then kept only on the `chosen` vertices' triangles (bool [V]; all when None)."""
    faces = tracks.faces
    assert faces is not None
    left, top, right, bottom = region
    rows, columns = _grid(top, bottom - top, spacing), _grid(left, right - left, spacing)
    grid_row, grid_column = (axis.ravel() for axis in np.meshgrid(rows, columns, indexing="ij"))
    first = rasterise_depth(
        _to_camera(tracks, 0),
        faces,
        intrinsics,
        *size,
        pixels=_pixel_mask(grid_row, grid_column, size),
        drawn=_drawn(tracks, 0),
    )
    triangle = first.triangle[grid_row, grid_column]
    seen = triangle >= 0
    if not seen.any():
        raise PointTracksError(
            "no surface is visible in the first frame, so there are no points to track; check that the "
            "camera looks at the objects at the scene's first frame"
        )
    if chosen is not None:
        seen[seen] = chosen[faces[triangle[seen], 0]]  # an object's triangles use only its own vertices
        if not seen.any():
            raise PointTracksError(
                "none of the chosen objects is visible in the first frame, so there are no points to track "
                "on them; check that the camera sees them at the scene's first frame"
            )
    return triangle[seen], first.barycentric[grid_row[seen], grid_column[seen]]


def _track_frame(
    tracks: Tracks,
    frame: int,
    intrinsics: np.ndarray,
    size: tuple[int, int],
    region: tuple[int, int, int, int],
    triangle: np.ndarray,
    weights: np.ndarray,
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions [N, 2] (NaN behind the camera) and visibility [N] of the points in one frame."""
    faces = tracks.faces
    assert faces is not None
    camera_points = _to_camera(tracks, frame)
    # A point is the same weighted sum of its corners in every frame, in camera space too.
    point = np.einsum("nk,nkj->nj", weights, camera_points[faces[triangle]])
    depth = point[:, 2]
    in_front = depth > NEAR_PLANE
    pixel = point @ intrinsics.T
    xy = np.full((len(point), 2), np.nan)
    xy[in_front] = pixel[in_front, :2] / pixel[in_front, 2:]
    inside = in_front & _inside(xy, region)
    column = np.floor(xy[inside, 0]).astype(np.int64)
    row = np.floor(xy[inside, 1]).astype(np.int64)

    drawn = _drawn(tracks, frame)
    buffer = rasterise_depth(
        camera_points, faces, intrinsics, *size, pixels=_pixel_mask(row, column, size), drawn=drawn
    )
    unhidden = (buffer.triangle[row, column] == triangle[inside]) | (
        depth[inside] <= buffer.depth[row, column] * (1.0 + depth_tolerance)
    )
    visible = inside if drawn is None else inside & drawn[triangle]
    visible[inside] &= unhidden
    return xy, visible


def wan_move_arrays(points: PointTracks) -> tuple[np.ndarray, np.ndarray]:
    """(tracks float32 [1, T, N, 2], visibility bool [1, T, N]): what Wan-Move's `generate.py` loads.

    As its example files (`examples/example_tracks.npy` (1, 81, 1, 2) float32,
    `example_visibility.npy` (1, 81, 1) bool): a batch of one, x then y in pixels of the input
    image, which `WanMove.generate` rescales in place (so float) to the size it generates.
    """
    return points.xy[None].astype(np.float32), points.visible[None].astype(bool)


def draw_point_tracks(points: PointTracks, background: np.ndarray | None = None, radius: int = 3) -> np.ndarray:
    """Draw the tracks as dots, uint8 [T, H, W, 3]: on `background` (one uint8 [H, W, 3] image of
    the output size) or on black. Visible points are filled, hidden ones hollow rings. A point's
    colour names where it starts: hue from left to right, brightness from top to bottom."""
    from PIL import Image, ImageDraw

    shape = (points.height, points.width, 3)
    if background is None:
        background = np.zeros(shape, dtype=np.uint8)
    if background.shape != shape or background.dtype != np.uint8:
        raise PointTracksError(
            f"the overlay background must be uint8 {list(shape)}, got {background.dtype} {list(background.shape)}"
        )
    start = points.xy[0]
    colors = [
        tuple(round(255 * c) for c in colorsys.hsv_to_rgb(x / points.width, 0.8, 1.0 - 0.4 * y / points.height))
        for x, y in start
    ]
    frames = np.empty((points.num_frames, *shape), dtype=np.uint8)
    for xy, visible, out in zip(points.xy, points.visible, frames):
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        for (x, y), shown, color in zip(xy.tolist(), visible.tolist(), colors):
            box = (x - radius, y - radius, x + radius, y + radius)
            draw.ellipse(box, fill=color if shown else None, outline=color)
        out[...] = np.asarray(image)
    return frames


def _check_request(
    tracks: Tracks, num_frames: int, size: tuple[int, int], spacing: int, depth_tolerance: float
) -> tuple[int, int]:
    """Raise `PointTracksError` naming the first bad argument; return the output (width, height)."""
    if not isinstance(tracks, Tracks):
        raise PointTracksError(f"point_tracks needs a Tracks object, got {type(tracks).__name__}")
    if tracks.faces is None or len(tracks.faces) == 0:
        raise PointTracksError(
            "these tracks have no faces; point tracks are sampled on surfaces, so export the scene's "
            "meshes (das export, or the add-on) rather than bare points"
        )
    if not _whole(num_frames) or num_frames < 1:
        raise PointTracksError(f"the number of frames must be a positive whole number, got {num_frames!r}")
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_whole(v) and v >= 1 for v in size):
        raise PointTracksError(f"size must be (width, height) in whole pixels, both positive, got {size!r}")
    if not _whole(spacing) or spacing < 1:
        raise PointTracksError(f"the grid spacing must be a whole number of pixels, at least 1, got {spacing!r}")
    if not np.isfinite(depth_tolerance) or depth_tolerance < 0:
        raise PointTracksError(f"depth_tolerance must be a number >= 0, got {depth_tolerance!r}")
    return int(size[0]), int(size[1])


def _chosen_vertices(tracks: Tracks, objects: Sequence[str] | None) -> np.ndarray | None:
    """bool [V]: the vertices of the chosen objects; None when all are chosen."""
    if objects is None:
        return None
    if isinstance(objects, str) or not objects or not all(isinstance(name, str) for name in objects):
        raise PointTracksError(f"objects must be a list of one or more object names, got {objects!r}")
    return tracks.vertices_of(objects)


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _canvas_intrinsics(tracks: Tracks, rect: tuple[int, int, int, int]) -> np.ndarray:
    """The tracks' intrinsics [T, 3, 3] in output pixels: scaled into the letterbox rectangle
    (left, top, width, height) and moved to its corner, as `video.fit_frames` places an image."""
    left, top, content_width, content_height = rect
    scale = np.diag([content_width / tracks.width, content_height / tracks.height, 1.0])
    shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    return shift @ scale @ tracks.intrinsics.astype(np.float64)


def _to_camera(tracks: Tracks, frame: int) -> np.ndarray:
    """Vertices of one frame in camera space, float64 [N, 3]."""
    matrix = tracks.world_to_camera[frame].astype(np.float64)
    return tracks.points[frame].astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def _drawn(tracks: Tracks, frame: int) -> np.ndarray | None:
    """Triangles rendered in a frame (all three corners visible); None when all are."""
    if tracks.visibility is None or tracks.faces is None:
        return None
    return tracks.visibility[frame][tracks.faces].all(axis=1)


def _grid(start: int, length: int, spacing: int) -> np.ndarray:
    """Pixel indices every `spacing` pixels in [start, start + length), centred in that span."""
    return start + ((length - 1) % spacing) // 2 + np.arange(0, length, spacing)


def _pixel_mask(row: np.ndarray, column: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixels under the points, bool [H, W]: all the depth buffer is asked about."""
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[row, column] = True
    return mask


def _inside(xy: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = region
    with np.errstate(invalid="ignore"):
        return (xy[:, 0] >= left) & (xy[:, 0] < right) & (xy[:, 1] >= top) & (xy[:, 1] < bottom)


def _frames(sources: np.ndarray, progress: bool):
    if not progress:  # tqdm is imported only when asked for: Blender's Python may not have it
        return sources
    from tqdm import tqdm

    return tqdm(sources, desc="point tracks", unit="frame", leave=False)
