"""Export an animated Blender scene to das-tracks/1: evaluated mesh vertices and camera, frame by frame.

`export_tracks(scene)` is usable from any `import bpy` script (no UI needed). Frames are every frame
of the scene's range or of a chosen range (the add-on's shots: the model's frames are chosen from
them later, `das_core.tracking.shot`), every `step`-th frame, or `samples` evenly spaced frames
(`das_core.tracking.video.sample_indices`, the reference's `linspace(0, n-1, samples)`).

Exported: every visible, renderable object whose evaluated geometry has faces, as Blender renders
it (modifiers, armatures, shape keys, constraints, parenting), triangulated: meshes; curves with a
bevel, extrude or fill; text; NURBS surfaces; metaballs (one surface per family); hair curves and
point clouds whose geometry nodes make a mesh. Geometry without faces (a bare curve, plain hair,
points, grease pencil, volumes) contributes nothing and is named in a warning.

Topology that changes across frames (remeshing, geometry nodes that add points, an object whose
vertex count changes, a metaball surface rebuilt with other triangles as its balls move) cannot be
tracked vertex by vertex: such an object is left out of the export with a warning naming it.
The exported objects' names and vertex counts, in vertex order, are `tracks.extra["objects"]` and
`tracks.extra["object_vertex_counts"]`. Warnings are logged and listed in `tracks.extra["warnings"]`
(the add-on reports them when a job starts). Only when nothing trackable is left does export fail.
Objects that turn off rendering mid-shot keep their vertices but are marked invisible on those
frames (`tracks.visibility`); objects hidden at the first frame are not exported, since DaS colours
every point by where it is in the first frame.

Mesh instances (collection instances, particles, geometry-nodes instances, of meshes and of curves,
text and the rest alike) of visible, renderable objects are exported too, matched across frames by
the depsgraph's persistent instance id; one that disappears is left out like a changing topology.
Not exported: viewport-hidden objects. The camera must be perspective.
"""

from __future__ import annotations

import logging
import mmap

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import sample_indices

from .gather_camera import gather_camera, gather_render_size, resolve_camera
from .gather_mesh import faceless_objects, gather_layout, gather_positions, renderable_objects

log = logging.getLogger(__name__)


def export_frames(
    scene: bpy.types.Scene,
    *,
    frame_start: int | None = None,
    frame_end: int | None = None,
    step: int = 1,
    samples: int | None = None,
) -> list[int]:
    """The Blender frame numbers to export: every `step`-th frame of the range, or `samples` evenly spaced frames."""
    start = scene.frame_start if frame_start is None else int(frame_start)
    end = scene.frame_end if frame_end is None else int(frame_end)
    if end < start:
        raise DasError(f"frame range {start}..{end} is empty; set an end frame at or after the start frame")
    if samples is not None:
        if samples < 1:
            raise DasError(f"samples must be 1 or more, got {samples}")
        return [start + int(i) for i in sample_indices(end - start + 1, samples)]
    if step < 1:
        raise DasError(f"frame step must be 1 or more, got {step}")
    return list(range(start, end + 1, int(step)))


def export_tracks(
    scene: bpy.types.Scene,
    *,
    camera: bpy.types.Object | None = None,
    frame_start: int | None = None,
    frame_end: int | None = None,
    step: int = 1,
    samples: int | None = None,
) -> Tracks:
    """Evaluate `scene` at each export frame and return its evaluated mesh vertices and camera as `Tracks`.

    The scene's current frame is restored afterwards. Raises `DasError` for a missing or
    non-perspective camera, an empty frame range or a scene with nothing to track.
    """
    camera = resolve_camera(scene, camera)
    frames = export_frames(scene, frame_start=frame_start, frame_end=frame_end, step=step, samples=samples)
    view_layer = _view_layer(scene)
    size = gather_render_size(scene)
    objects = renderable_objects(view_layer)
    warnings = []

    original_frame, original_subframe = scene.frame_current, scene.frame_subframe
    try:
        scene.frame_set(frames[0])
        depsgraph = view_layer.depsgraph
        layout = gather_layout(objects, depsgraph)
        faceless = faceless_objects(objects, layout)
        if faceless:
            warnings.append(
                f"left out {', '.join(faceless)}: no faces to track at the first frame; give a curve or "
                "text a Bevel Depth, Extrude or Fill, or convert the object to a mesh, to include it"
            )
        if not layout.counts:
            reason = f": {warnings[0]}" if warnings else ""
            raise DasError(f"scene {scene.name!r} has no visible, renderable objects with faces to track{reason}")
        points = _ordinary_pages((len(frames), layout.num_points, 3), np.float32)
        rendered = np.ones((len(frames), len(layout.counts)), dtype=bool)
        world_to_camera = np.empty((len(frames), 4, 4), dtype=np.float64)
        intrinsics = np.empty((len(frames), 3, 3), dtype=np.float64)
        changed: set[str] = set()
        for index, frame in enumerate(frames):
            if index:
                scene.frame_set(frame)
            changed_now, rendered[index] = gather_positions(depsgraph, layout, points[index])
            changed |= changed_now
            world_to_camera[index], intrinsics[index] = gather_camera(camera, depsgraph, size)
    finally:
        scene.frame_set(original_frame, subframe=original_subframe)

    visibility = np.repeat(rendered, layout.counts, axis=1)
    if changed:
        warnings.append(_changed_warning(changed))
        layout, keep = layout.without(changed)
        points, visibility = points[:, keep], visibility[:, keep]
    if layout.num_points == 0:
        reason = f": {'; '.join(warnings)}" if warnings else " (its meshes have no vertices)"
        raise DasError(f"nothing to track in scene {scene.name!r}{reason}")
    for warning in warnings:
        log.warning(warning)

    return Tracks(
        points=points,
        world_to_camera=world_to_camera,
        intrinsics=intrinsics,
        width=size.width,
        height=size.height,
        faces=layout.faces,
        frame_numbers=np.array(frames, dtype=np.int32),
        fps=scene.render.fps / scene.render.fps_base,
        visibility=None if visibility.all() else visibility,
        extra={
            "scene": scene.name,
            "camera": camera.name,
            "objects": list(layout.names),
            "object_vertex_counts": list(layout.counts),
            "warnings": warnings,
        },
    )


def _ordinary_pages(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An uninitialised array on the system's ordinary memory pages.

    numpy asks Linux for huge pages for large arrays; where memory is fragmented, the first write to
    them can stall in compaction for a second or more, and this array (every frame of the shot) is the
    largest thing Generate writes while it holds Blender.
    """
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not size:
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, size), dtype=dtype).reshape(shape)


def _changed_warning(names: set[str]) -> str:
    return (
        f"left out {', '.join(sorted(names))}: the vertex count changes between frames "
        "(remeshing or generated geometry), a metaball surface is rebuilt differently, or the "
        "instance disappears, so its vertices cannot be tracked; apply the modifier, make the "
        "topology constant or convert it to a mesh to include it"
    )


def _view_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    """The context's view layer when it belongs to `scene`, otherwise the scene's first."""
    context_layer = getattr(bpy.context, "view_layer", None)
    if context_layer is not None and bpy.context.scene == scene:
        return context_layer
    return scene.view_layers[0]
