"""The reference image: the first exported frame rendered at the same framing as the tracking video.

Same camera, same resolution (x percentage), same frame as the tracking video's first frame, so the
image and the tracking video line up pixel for pixel before `das_core.tracking.video.fit_frames` letterboxes
both to the model's size (`DAS_WINDOW`). Render settings touched here are restored afterwards.
"""

from __future__ import annotations

import math
import os

import bpy
import numpy as np

from das_core.errors import DasError

from .gather_camera import resolve_camera

# Short names for the engines; Eevee is BLENDER_EEVEE_NEXT in Blender 4.2 LTS (tested: 4.2.23), BLENDER_EEVEE in 5.0.
ENGINE_IDS = {
    "WORKBENCH": ("BLENDER_WORKBENCH",),
    "EEVEE": ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"),
    "CYCLES": ("CYCLES",),
}


def render_reference(
    scene: bpy.types.Scene,
    path: str | os.PathLike,
    *,
    frame: int,
    engine: str | None = None,
    camera: bpy.types.Object | None = None,
    resolution_percentage: int | None = None,
) -> str:
    """Render `frame` of `scene` through `camera` (default: the scene camera) to the PNG `path`.

    `engine` is None (the scene's engine), a short name ("WORKBENCH", "EEVEE", "CYCLES") or a
    Blender engine id. `resolution_percentage` overrides the scene's (same framing, fewer pixels).
    Returns the path written. Usable from plain `import bpy` scripts.
    """
    path = os.path.abspath(os.fspath(path))
    camera = resolve_camera(scene, camera)
    engine_id = None if engine is None else _engine_id(scene.render, engine)
    render = scene.render
    settings = _Saved(
        (render, "engine", engine_id),
        (render, "filepath", path),
        (render, "use_file_extension", False),
        (render, "resolution_percentage", resolution_percentage),
        (render.image_settings, "file_format", "PNG"),
        (render.image_settings, "color_mode", "RGB"),
        (render.image_settings, "color_depth", "8"),
        (scene, "camera", camera),
    )
    original_frame = scene.frame_current
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        settings.apply()
        scene.frame_set(frame)
        bpy.ops.render.render(write_still=True, scene=scene.name)
    except RuntimeError as error:
        raise DasError(f"rendering frame {frame} of scene {scene.name!r} failed: {error}") from None
    finally:
        settings.restore()
        scene.frame_set(original_frame)
    if not os.path.isfile(path):
        raise DasError(
            f"rendering frame {frame} of scene {scene.name!r} wrote no image to {path}; check the render settings"
        )
    return path


def _engine_id(render: bpy.types.RenderSettings, engine: str) -> str:
    """The id this Blender knows for `engine` (a short name or an id), found by trying each candidate."""
    original = render.engine
    for candidate in ENGINE_IDS.get(engine, (engine,)):
        try:
            render.engine = candidate
        except TypeError as error:  # Blender's message lists the engines it has
            problem = str(error)
            continue
        render.engine = original
        return candidate
    raise DasError(f"render engine {engine!r} is not available: {problem}")


def percentage_for(scene: bpy.types.Scene, width: int, height: int) -> int:
    """The smallest render percentage whose image still covers a `width` x `height` letterbox, at most the scene's own."""
    render = scene.render
    scale = min(width / render.resolution_x, height / render.resolution_y)
    return max(1, min(render.resolution_percentage, math.ceil(scale * 100)))


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file with Blender's own loader (no imageio inside Blender): uint8 [H, W, 3], top row first."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise DasError(f"reference image {path} does not exist; choose an existing image file")
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as error:
        raise DasError(f"cannot read reference image {path}: {error}") from None
    try:
        width, height = image.size
        if width == 0 or height == 0:
            raise DasError(f"reference image {path} is empty or in a format Blender cannot read")
        pixels = np.empty(width * height * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    rgba = pixels.reshape(height, width, -1)[::-1]
    if rgba.shape[2] == 1:
        rgba = np.repeat(rgba, 3, axis=2)
    return np.round(np.clip(rgba[:, :, :3], 0.0, 1.0) * 255.0).astype(np.uint8)


class _Saved:
    """Set attributes now and put the old values back later (skipping values left as None)."""

    def __init__(self, *changes: tuple[object, str, object]) -> None:
        self._changes = [change for change in changes if change[2] is not None]
        self._old: list[tuple[object, str, object]] = []

    def apply(self) -> None:
        for owner, name, value in self._changes:
            self._old.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)

    def restore(self) -> None:
        for owner, name, value in reversed(self._old):
            setattr(owner, name, value)
        self._old.clear()
