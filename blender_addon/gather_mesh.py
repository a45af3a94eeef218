"""Read evaluated mesh geometry from bpy in bulk: which objects, their triangles, their world positions.

Every visible, renderable mesh object is read through the depsgraph, so modifiers, armatures, shape
keys, constraints and parenting are applied exactly as Blender renders them. Reads use `foreach_get`
into preallocated numpy arrays and world transforms are numpy matrix products: no per-vertex Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np


@dataclass(frozen=True)
class MeshLayout:
    """Where each object's vertices sit in the flat point array, and the triangles over them."""

    names: tuple[str, ...]
    offsets: tuple[int, ...]  # first point index of each object
    counts: tuple[int, ...]  # vertex count of each object at the first frame
    faces: np.ndarray  # int32 [F, 3], indices into the flat point array

    @property
    def num_points(self) -> int:
        return sum(self.counts)

    def without(self, names: set[str]) -> tuple["MeshLayout", np.ndarray]:
        """This layout minus the named objects, plus the boolean mask of points kept."""
        keep = np.ones(self.num_points, dtype=bool)
        for name, offset, count in zip(self.names, self.offsets, self.counts):
            if name in names:
                keep[offset : offset + count] = False
        new_index = np.cumsum(keep, dtype=np.int64) - 1
        faces = self.faces[keep[self.faces].all(axis=1)]
        kept = [(n, c) for n, c in zip(self.names, self.counts) if n not in names]
        counts = tuple(c for _, c in kept)
        offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(counts)[:-1]])) if kept else ()
        layout = MeshLayout(tuple(n for n, _ in kept), offsets, counts, new_index[faces].astype(np.int32))
        return layout, keep


def renderable_mesh_objects(view_layer: bpy.types.ViewLayer) -> list[bpy.types.Object]:
    """Mesh objects that are visible in the view layer and enabled for rendering, in a stable order."""
    objects = [
        obj
        for obj in view_layer.objects
        if obj.type == "MESH" and not obj.hide_render and obj.visible_get(view_layer=view_layer)
    ]
    return sorted(objects, key=lambda obj: obj.name)


def gather_layout(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> MeshLayout:
    """Triangles of each evaluated mesh at the current frame, indexed into one flat point array."""
    names, offsets, counts, faces = [], [], [], []
    offset = 0
    for obj in objects:
        mesh = obj.evaluated_get(depsgraph).data
        triangles = mesh.loop_triangles
        indices = np.empty(len(triangles) * 3, dtype=np.int32)
        triangles.foreach_get("vertices", indices)
        names.append(obj.name)
        offsets.append(offset)
        counts.append(len(mesh.vertices))
        faces.append(indices.reshape(-1, 3) + offset)
        offset += len(mesh.vertices)
    all_faces = np.concatenate(faces) if faces else np.empty((0, 3), dtype=np.int32)
    return MeshLayout(tuple(names), tuple(offsets), tuple(counts), all_faces.astype(np.int32))


def gather_positions(
    objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, layout: MeshLayout, out: np.ndarray
) -> tuple[set[str], np.ndarray]:
    """Fill `out` [N, 3] float32 with world positions at the current frame.

    Returns the names of objects whose vertex count differs from the layout (their rows are left
    untouched) and a per-object render flag (False where `hide_render` is animated on).
    """
    changed = set()
    rendered = np.ones(len(objects), dtype=bool)
    for index, (obj, offset, count) in enumerate(zip(objects, layout.offsets, layout.counts)):
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.data
        if len(mesh.vertices) != count:
            changed.add(obj.name)
            continue
        rows = out[offset : offset + count]
        mesh.vertices.foreach_get("co", rows.reshape(-1))
        matrix = np.array(evaluated.matrix_world, dtype=np.float32)
        np.matmul(rows, matrix[:3, :3].T, out=rows)
        rows += matrix[:3, 3]
        rendered[index] = not obj.hide_render
    return changed, rendered
