"""Generated and tracking frames into the Video Sequence Editor, lined up with the exported frames.

A strip is an image sequence whose elements are the PNG files on disk, one element per timeline
frame of the exported span: the shot's own frame there (in-betweened), or the model's frame at or
before it, held (`timeline_elements`), so the model's frame rate meets the scene's without effects or
frame-rate tricks, and Blender's prefetch, proxies and rendering read plain files. Blender 4.4 renamed
`sequence_editor.sequences` to `strips` (5.0 dropped the old name and added a per-workspace sequencer
scene): those version differences live only in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np

from das_core.errors import DasError, plural

MAX_CHANNEL = 128


def sequencer_scene(context: bpy.types.Context) -> bpy.types.Scene:
    """The scene the sequencer edits: the workspace's sequencer scene (Blender 5.0+) or the context scene."""
    workspace = getattr(context, "workspace", None)
    return getattr(workspace, "sequencer_scene", None) or context.scene


def strip_collection(scene: bpy.types.Scene):
    """The top-level strips of `scene`'s sequencer (created if needed): `strips` from 4.4, `sequences` before."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def strip_span(strip: bpy.types.Strip) -> tuple[int, int]:
    """The timeline frames a strip covers, as (first, one past the last): its handles.

    `left_handle` / `right_handle` from Blender 5.1, which deprecates `frame_final_start` / `_end`.
    """
    if hasattr(strip, "left_handle"):
        return strip.left_handle, strip.right_handle
    return strip.frame_final_start, strip.frame_final_end


def free_channel(scene: bpy.types.Scene, frame_start: int, frame_end: int, height: int = 1) -> int:
    """The lowest channel where `height` stacked channels are empty over [frame_start, frame_end]."""
    busy = set()
    for strip in strip_collection(scene):
        start, end = strip_span(strip)
        if start <= frame_end and end > frame_start:
            busy.add(strip.channel)
    for channel in range(1, MAX_CHANNEL - height + 2):
        if not busy.intersection(range(channel, channel + height)):
            return channel
    raise DasError(
        f"found no {plural(height, 'free sequencer channel')} over frames {frame_start}..{frame_end}; "
        "delete or move some strips"
    )


def timeline_elements(keys: Sequence[int], num_frames: int) -> np.ndarray:
    """For each of a shot's `num_frames` timeline frames, the index into `keys` (the timeline indices of the
    model's frames, increasing from 0) of the key it shows: the last one at or before it."""
    return np.searchsorted(np.asarray(keys), np.arange(num_frames), side="right") - 1


def add_image_sequence(
    scene: bpy.types.Scene,
    name: str,
    images: list[Path],
    elements: np.ndarray,
    *,
    channel: int,
    frame_start: int,
) -> bpy.types.Strip:
    """An image-sequence strip at `frame_start` on `channel` showing `images[elements[i]]` at frame start+i.

    Returns a `bpy.types.Strip` (`bpy.types.Sequence` in Blender 4.2).
    """
    files = [Path(images[int(index)]) for index in elements]
    directory = files[0].parent
    strip = strip_collection(scene).new_image(
        name=name, filepath=_blend_path(files[0]), channel=channel, frame_start=frame_start, fit_method="FIT"
    )
    for file in files[1:]:
        strip.elements.append(file.name)
    strip.directory = _blend_path(directory) + "/"
    return strip


def _blend_path(path: Path) -> str:
    """Relative to the .blend file when it is saved (so projects move), absolute otherwise."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(str(path))
        except ValueError:  # another drive on Windows
            pass
    return str(path)
