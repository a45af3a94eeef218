"""Everything a job needs from the scene, gathered on the main thread: tracks, tracking video, reference image.

The tracking video and reference image are letterboxed to the model's 720 x 480 with the project's
one aspect policy (`das_core.video.fit_frames`), so what is sent, what is previewed and what
`das render-tracking` writes are the same frames.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.render import render_tracking
from das_core.tracks import Tracks
from das_core.video import fit_frames, write_png_dir

from .export import export_tracks
from .reference_render import load_image_rgb, render_reference

NUM_FRAMES = 49  # the released DaS checkpoint's length
WIDTH, HEIGHT = 720, 480  # and size


@dataclass(frozen=True)
class TrackingVideo:
    """The exported tracks and their tracking video (uint8 [49, 480, 720, 3]) written as PNGs."""

    tracks: Tracks
    frames: np.ndarray
    paths: list[Path]


def cache_dir(scene: bpy.types.Scene) -> Path:
    """The scene's cache folder: the chosen one, `das_cache` next to the .blend, or a temp folder if unsaved."""
    chosen = scene.das.output_dir
    if chosen:
        return Path(bpy.path.abspath(chosen))
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//das_cache"))
    return Path(tempfile.gettempdir()) / "das_cache"


def export_scene(scene: bpy.types.Scene) -> Tracks:
    """`export_tracks` with the frame range and sampling chosen in `scene.das`."""
    settings = scene.das
    window = {} if settings.use_scene_range else {"frame_start": settings.frame_start, "frame_end": settings.frame_end}
    step = settings.frame_step if settings.sampling == "STEP" else None
    return export_tracks(scene, samples=NUM_FRAMES, step=step, **window)


def tracking_video(scene: bpy.types.Scene, directory: Path) -> TrackingVideo:
    """Export the scene, render its tracking video at 720 x 480 and write it to `directory` as PNGs."""
    tracks = export_scene(scene)
    frames = fit_frames(render_tracking(tracks, scene.das.tracking_mode, NUM_FRAMES), WIDTH, HEIGHT)
    return TrackingVideo(tracks, frames, write_png_dir(directory, frames))


def reference_image(scene: bpy.types.Scene, frame: int, directory: Path) -> np.ndarray:
    """The first frame's image, rendered or chosen per `scene.das.reference`, letterboxed to 720 x 480."""
    settings = scene.das
    if settings.reference == "IMAGE":
        if not settings.reference_image:
            raise DasError("reference image is set to 'Image file' but no file is chosen; pick one in the DaS panel")
        image = load_image_rgb(bpy.path.abspath(settings.reference_image))
    else:
        engine = "WORKBENCH" if settings.reference == "WORKBENCH" else None
        image = load_image_rgb(render_reference(scene, os.path.join(directory, "reference.png"), frame=frame, engine=engine))
    return fit_frames(image, WIDTH, HEIGHT, resample="bilinear")
