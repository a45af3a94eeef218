"""Mesh mode: the mesh's surfaces coloured from the first frame, nearest surface wins (ENCODING.md,
"Mesh mode"). Vertices go to camera space and pixels here, triangles crossing the camera plane are
clipped, `triangles` sets up what is left, `raster` draws it and `shading` gives the colours of the
chosen encoding."""

from __future__ import annotations

import threading

import numpy as np

from das_core.tracking.render import raster
from das_core.tracking.render.canvas import Canvas, render_chunks
from das_core.tracking.render.shading import Shader, shader_for
from das_core.tracking.render.triangles import Triangles, past_guard_band
from das_core.tracking.tracks import Tracks

NEAR_PLANE = 1e-3  # camera-space z (scene units) where triangles are clipped
# A chunk of frames is drawn at once (up to `_MESH_CHUNK_PIXELS` pixels and `_CHUNK_TRIANGLES`
# triangles: six 720 x 480 frames of a 65 k-triangle sphere, two of a 261 k one): each window
# size's candidate batch then holds triangles of several frames and shares numpy's per-call
# overhead, which holds the GIL.
_MESH_CHUNK_PIXELS = 1 << 21
_CHUNK_TRIANGLES = 1 << 19


def render_mesh(
    tracks: Tracks, faces: np.ndarray, canvas: Canvas, sources: np.ndarray, encoding: str, progress: bool
) -> np.ndarray:
    """Rasterise the triangles `faces` [F, 3] of the tracked points at each source frame, coloured
    from frame 0 in `encoding` (`shading.ENCODINGS`), at the content size."""
    width, height = canvas.content_width, canvas.content_height
    shader = shader_for(encoding, tracks, canvas)
    depth_buffers = threading.local()  # one per thread, cleared for each chunk: no page faults

    def draw(chunk: np.ndarray, out: np.ndarray) -> None:
        size = out.shape[0] * height * width
        buffer = getattr(depth_buffers, "nearest", None)
        if buffer is None or buffer.size < size:
            buffer = depth_buffers.nearest = np.empty(size, dtype=np.int64)
        nearest = buffer[:size]
        nearest.fill(0)
        _rasterise(
            out,
            nearest,
            tracks.points[chunk],
            tracks.world_to_camera[chunk],
            canvas.intrinsics[chunk],
            faces,
            shader,
            width,
            height,
        )

    per_chunk = min(_MESH_CHUNK_PIXELS // (width * height), _CHUNK_TRIANGLES // len(faces))
    return render_chunks(sources, max(1, per_chunk), draw, (height, width), progress)


def _rasterise(
    out: np.ndarray,
    nearest: np.ndarray,
    points: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    faces: np.ndarray,
    shader: Shader,
    width: int,
    height: int,
) -> None:
    """Draw `faces` at each of Tc frames (points [Tc, N, 3]) coloured by `shader` into `out`,
    uint8 [Tc, H, W, 3], every pixel (black where nothing is drawn). `nearest`, int64
    [Tc * H * W] and zero on entry, is the depth buffer."""
    attributes = np.tile(shader.attributes, (len(points), 1))
    triangles, _ = set_up_triangles(points, world_to_camera, intrinsics, faces, attributes, width, height)
    if triangles is None:  # everything is behind the camera
        out[...] = 0
        return
    # Depth test: per pixel keep the fragment with the largest (1/z, colour) key, i.e. the
    # nearest surface; 1/z is positive, so its float bits order like the numbers.
    raster.draw(triangles, nearest, shader)
    raster.colour(nearest, out)


def set_up_triangles(
    points: np.ndarray,
    world_to_camera: np.ndarray,
    intrinsics: np.ndarray,
    faces: np.ndarray,
    attributes: np.ndarray,
    width: int,
    height: int,
) -> tuple[Triangles | None, np.ndarray]:
    """`faces` at each of Tc frames (points [Tc, N, 3]) in camera space, clipped at the near
    plane and set up for `raster.draw`: (triangles, or None when everything is behind the
    camera; the attributes of every vertex they index, [Tc * N + clipped, k]).

    `attributes` [Tc * N, k] are per vertex of each frame; the clipped vertices get theirs
    interpolated along the cut edges. The triangles shade with them when k = 3 (a `Shader`'s),
    with zeros otherwise (a caller that reads the attributes itself, `fragments`)."""
    num_frames, num_vertices = points.shape[:2]
    # A frame at a time: einsum over several frames at once is slower per point.
    camera = np.concatenate(
        [np.einsum("tij,tnj->tni", world_to_camera[k : k + 1, :3, :3], points[k : k + 1]) for k in range(num_frames)]
    )
    camera += world_to_camera[:, None, :3, 3]
    x, y, inverse_z = _to_pixels(camera, intrinsics[:, None])
    precise = None  # float64 pixel positions, only when some triangle may need them
    if past_guard_band(x, y, width, height) or not (camera[..., 2] > NEAR_PLANE).all():
        precise = _precise_pixels(camera, intrinsics[:, None]).reshape(-1, 2)
    camera, x, y, inverse_z = camera.reshape(-1, 3), x.ravel(), y.ravel(), inverse_z.ravel()
    offsets = (np.arange(num_frames, dtype=np.int64) * num_vertices)[:, None]
    corners = [(offsets + faces[:, k]).ravel() for k in range(3)]
    triangle_frame = np.repeat(np.arange(num_frames, dtype=np.int32), len(faces))

    # Triangles crossing the camera plane are replaced by their clipped parts, with new vertices.
    in_front = camera[:, 2] > NEAR_PLANE
    if not in_front.all():
        front_count = in_front[corners[0]].astype(np.int8) + in_front[corners[1]] + in_front[corners[2]]
        crossing = (front_count == 1) | (front_count == 2)
        whole = front_count == 3
        new_camera, new_attributes, new_vertex_frame, clipped, clipped_frame = _clip_near(
            np.stack([c[crossing] for c in corners], axis=1),
            triangle_frame[crossing],
            camera,
            attributes,
            in_front,
        )
        new_x, new_y, new_inverse_z = _to_pixels(new_camera, intrinsics[new_vertex_frame])
        x, y, inverse_z = np.r_[x, new_x], np.r_[y, new_y], np.r_[inverse_z, new_inverse_z]
        precise = np.concatenate([precise, _precise_pixels(new_camera, intrinsics[new_vertex_frame])])
        attributes = np.concatenate([attributes, new_attributes])
        corners = [np.r_[c[whole], clipped[:, k]] for k, c in enumerate(corners)]
        triangle_frame = np.r_[triangle_frame[whole], clipped_frame]

    if not len(triangle_frame):
        return None, attributes
    shading = attributes if attributes.shape[1] == 3 else np.broadcast_to(np.float32(0), (len(x), 3))
    return Triangles(corners, triangle_frame, x, y, inverse_z, precise, shading, width, height), attributes


def _to_pixels(camera: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-space points [..., 3] to pixel x, y and 1/z (0 where z <= 0), float32.

    `intrinsics` [..., 3, 3] broadcasts against the points' leading dimensions.
    """
    z = camera[..., 2]
    inverse_z = np.zeros(z.shape, dtype=np.float32)
    np.divide(1.0, z, out=inverse_z, where=z > 0)
    x = (intrinsics[..., 0, 0] * camera[..., 0] + intrinsics[..., 0, 1] * camera[..., 1]) * inverse_z
    y = intrinsics[..., 1, 1] * camera[..., 1] * inverse_z
    return (x + intrinsics[..., 0, 2]).astype(np.float32), (y + intrinsics[..., 1, 2]).astype(np.float32), inverse_z


def _precise_pixels(camera: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-space points [..., 3] to pixel x, y in float64 [..., 2] (inf/NaN where z <= 0):
    positions millions of pixels away keep sub-pixel accuracy, which float32 does not."""
    z = camera[..., 2]
    precise = np.empty((*z.shape, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        precise[..., 0] = (intrinsics[..., 0, 0] * camera[..., 0] + intrinsics[..., 0, 1] * camera[..., 1]) / z
        precise[..., 1] = intrinsics[..., 1, 1] * camera[..., 1] / z
    precise[..., 0] += intrinsics[..., 0, 2]
    precise[..., 1] += intrinsics[..., 1, 2]
    return precise


def _clip_near(
    crossing: np.ndarray, frames: np.ndarray, camera: np.ndarray, attributes: np.ndarray, in_front: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clip triangles [C, 3] that have one or two vertices behind z = NEAR_PLANE.

    Returns the new vertices (camera positions, shading attributes, frames), numbered from
    `len(camera)` on, and the triangles that replace the crossing ones with their frames.
    Attributes are interpolated linearly in camera space along each cut edge, which is exact
    for attributes that vary linearly over the 3D triangle (as colours and positions do).
    """
    front = in_front[crossing]
    quad = front.sum(axis=1) == 2  # one vertex behind: a quad in front, cut into two triangles
    # Rotate each triangle (keeping its winding) so its odd vertex, the one behind or the one in
    # front, comes first.
    odd = np.where(quad, np.argmin(front, axis=1), np.argmax(front, axis=1))
    rows = np.arange(len(crossing))[:, None]
    a, b, c = crossing[rows, (odd[:, None] + np.arange(3)) % 3].T

    def cut(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = ((NEAR_PLANE - camera[p, 2]) / (camera[q, 2] - camera[p, 2]))[:, None]
        position = camera[p] + t * (camera[q] - camera[p])
        position[:, 2] = NEAR_PLANE
        return position, (attributes[p] + t * (attributes[q] - attributes[p])).astype(attributes.dtype)

    ab_position, ab_attributes = cut(a, b)
    ac_position, ac_attributes = cut(a, c)
    ab = len(camera) + np.arange(len(crossing))
    ac = ab + len(crossing)
    single = ~quad
    clipped = np.concatenate(
        [
            np.stack([ab[quad], b[quad], c[quad]], axis=1),
            np.stack([ab[quad], c[quad], ac[quad]], axis=1),
            np.stack([a[single], ab[single], ac[single]], axis=1),
        ]
    )
    return (
        np.concatenate([ab_position, ac_position]),
        np.concatenate([ab_attributes, ac_attributes]),
        np.concatenate([frames, frames]),
        clipped,
        np.concatenate([frames[quad], frames[quad], frames[single]]),
    )
