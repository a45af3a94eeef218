"""What a job needs from the scene, gathered on the main thread: the exported tracks and the reference image.

The operator renders the reference while the job's thread renders the tracking video (Blender
releases Python's lock while it renders), so the two overlap.

The reference image is letterboxed to the model's size (the window the server last named, `server_info`)
with the project's one aspect policy (`das_core.tracking.video.fit_frames`), like the control (made off the
main thread, which letterboxes again if the server's answer names another size).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import fit_frames
from das_core.tracking.window import ModelWindow

from .export import export_tracks
from .reference_render import load_image_rgb, percentage_for, render_reference


def cache_dir(scene: bpy.types.Scene) -> Path:
    """The scene's cache folder: the chosen one, `das_cache` next to the .blend, or a temp folder if unsaved."""
    chosen = scene.das.output_dir
    if chosen:
        return Path(bpy.path.abspath(chosen))
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//das_cache"))
    return Path(tempfile.gettempdir()) / "das_cache"


def job_directory(scene: bpy.types.Scene, name: str) -> Path:
    """A new folder for one job's files inside the cache folder; a clear error if it cannot be made."""
    directory = cache_dir(scene) / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DasError(
            f"cannot create the cache folder {directory} ({error.strerror}); choose another Cache folder"
        ) from None
    return directory


def export_range(scene: bpy.types.Scene) -> tuple[int, int]:
    """The first and last timeline frame `scene.das` exports: the scene's range or the one chosen."""
    settings = scene.das
    if settings.use_scene_range:
        return scene.frame_start, scene.frame_end
    return settings.frame_start, settings.frame_end


def export_scene(scene: bpy.types.Scene) -> Tracks:
    """`export_tracks` at every timeline frame of the range chosen in `scene.das` (the job's thread picks
    the model's frames from them, `das_core.tracking.shot.plan_shot`)."""
    start, end = export_range(scene)
    return export_tracks(scene, frame_start=start, frame_end=end)


def chosen_reference(scene: bpy.types.Scene, window: ModelWindow) -> np.ndarray | None:
    """The image the artist picked (`scene.das.reference` is IMAGE), letterboxed to the model's size; None to render one.

    Read before any other work, so a missing file is reported at once.
    """
    settings = scene.das
    if settings.reference != "IMAGE":
        return None
    if not settings.reference_image:
        raise DasError("reference image is set to 'Image file' but no file is chosen; pick one in the DaS panel")
    return fit_frames(load_image_rgb(bpy.path.abspath(settings.reference_image)), *window.size, resample="bilinear")


def rendered_reference(scene: bpy.types.Scene, frame: int, directory: Path, window: ModelWindow) -> np.ndarray:
    """The first frame rendered per `scene.das.reference` (scene engine, Workbench, Eevee or Cycles), letterboxed to the model's size."""
    engine = None if scene.das.reference == "SCENE" else scene.das.reference  # WORKBENCH, EEVEE or CYCLES
    # Rendered only as large as the letterbox needs: the same framing, fewer pixels to wait for.
    path = render_reference(
        scene, os.path.join(directory, "reference.png"), frame=frame, engine=engine,
        resolution_percentage=percentage_for(scene, *window.size),
    )  # fmt: skip
    return fit_frames(load_image_rgb(path), *window.size, resample="bilinear")
