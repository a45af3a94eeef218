"""Read evaluated mesh geometry from bpy in bulk: which meshes, their triangles, their world positions.

Every visible, renderable object is read through the depsgraph, so modifiers, armatures, shape keys,
constraints and parenting are applied exactly as Blender renders them. A mesh object gives its
evaluated mesh. A curve, text, NURBS surface or metaball gives the mesh Blender renders for it (its
bevel, extrude and fill; the metaball family's surface), which the depsgraph hands out as the
object's own mesh instance, the same data as `evaluated_get(depsgraph).to_mesh()`; hair curves and
point clouds count only when their geometry nodes make a mesh. Geometry with no faces (a bare
curve, plain hair, points, grease pencil, a volume) contributes nothing and is named by
`faceless_objects`. The mesh instances visible objects make (collection instances, particles,
geometry-nodes instances) are read too, matched across frames by the depsgraph's persistent
instance id. Reads use `foreach_get` into preallocated numpy arrays and world transforms are numpy
matrix products: no per-vertex Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

InstanceKey = tuple[str, str, tuple[int, ...]]  # (instancer name, instanced object name, persistent id)

UNUSED_ID = 2**31 - 1  # persistent-id levels an instance does not use hold INT_MAX

# Object types that render geometry, in the words messages use; one that brings no vertices into
# the export is named in a warning. Other types (empties, cameras, lights, armatures, lattices) draw
# nothing themselves.
SURFACE_KINDS = {
    "MESH": "mesh",
    "CURVE": "curve",
    "FONT": "text",
    "SURFACE": "surface",
    "META": "metaball",
    "CURVES": "hair curves",
    "POINTCLOUD": "point cloud",
    "VOLUME": "volume",
    "GPENCIL": "grease pencil",  # Blender 4.2
    "GREASEPENCIL": "grease pencil",  # Blender 4.3 and newer
}


@dataclass(frozen=True)
class MeshLayout:
    """Where each mesh's vertices sit in the flat point array, and the triangles over them.

    Entries are the objects first, by name (a mesh object's own mesh, `instance_keys[i]` None; or
    the mesh a curve, text, surface or metaball evaluates to, keyed as the object's own instance),
    then the instances.
    """

    names: tuple[str, ...]  # for messages: the object's name, or "<instancer> instance <id>"
    owners: tuple[str, ...]  # the object whose render visibility applies (itself, or the instancer)
    instance_keys: tuple[InstanceKey | None, ...]
    offsets: tuple[int, ...]  # first point index of each entry
    counts: tuple[int, ...]  # vertex count of each entry at the first frame
    faces: np.ndarray  # int32 [F, 3], indices into the flat point array
    # First-frame triangles (the entry's own vertex indices) of entries whose mesh is rebuilt every
    # frame (metaballs: the same vertex count can come with other triangles, other surface points);
    # None for the rest, whose vertex count alone says whether the topology held.
    rebuilt: tuple[np.ndarray | None, ...]

    @property
    def num_points(self) -> int:
        return sum(self.counts)

    def without(self, names: set[str]) -> tuple[MeshLayout, np.ndarray]:
        """This layout minus the named entries, plus the boolean mask of points kept."""
        keep = np.ones(self.num_points, dtype=bool)
        for name, offset, count in zip(self.names, self.offsets, self.counts):
            if name in names:
                keep[offset : offset + count] = False
        new_index = np.cumsum(keep, dtype=np.int64) - 1
        faces = new_index[self.faces[keep[self.faces].all(axis=1)]].astype(np.int32)
        kept = [i for i, name in enumerate(self.names) if name not in names]
        counts = tuple(self.counts[i] for i in kept)
        offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(counts)[:-1]])) if kept else ()
        pick = lambda values: tuple(values[i] for i in kept)  # noqa: E731
        layout = MeshLayout(
            pick(self.names), pick(self.owners), pick(self.instance_keys), offsets, counts, faces, pick(self.rebuilt)
        )
        return layout, keep


def renderable_objects(view_layer: bpy.types.ViewLayer) -> list[bpy.types.Object]:
    """Objects visible in the view layer and enabled for rendering, by name (any type: instancers too)."""
    objects = [obj for obj in view_layer.objects if not obj.hide_render and obj.visible_get(view_layer=view_layer)]
    return sorted(objects, key=lambda obj: obj.name)


def gather_layout(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> MeshLayout:
    """Triangles of each evaluated mesh (objects, then instances) at the current frame, in one flat index."""
    owners = {obj.name for obj in objects}
    own, instances = {}, []  # entries: (name, owner, key, vertex count, triangles, rebuilt)
    for instance in depsgraph.object_instances:  # instance data is valid only inside this loop
        key = _instance_key(instance)
        if key is None or key[0] not in owners:
            continue
        mesh = instance.object.data
        triangles = _triangles(mesh)
        rebuilt = triangles if instance.object.original.type == "META" else None
        if not _is_own_mesh(key):
            instances.append((_instance_name(key), key[0], key, len(mesh.vertices), triangles, rebuilt))
        elif len(triangles):  # a curve's or hair's mesh of bare edges has no surface to track
            own[key[0]] = (key[0], key[0], key, len(mesh.vertices), triangles, rebuilt)
    entries = []
    for obj in objects:
        if obj.type == "MESH":
            mesh = obj.evaluated_get(depsgraph).data
            entries.append((obj.name, obj.name, None, len(mesh.vertices), _triangles(mesh), None))
        elif obj.name in own:
            entries.append(own[obj.name])
    entries += instances
    offsets = np.concatenate([[0], np.cumsum([entry[3] for entry in entries], dtype=np.int64)])
    faces = [entry[4] + offset for entry, offset in zip(entries, offsets)]
    return MeshLayout(
        names=tuple(entry[0] for entry in entries),
        owners=tuple(entry[1] for entry in entries),
        instance_keys=tuple(entry[2] for entry in entries),
        offsets=tuple(int(offset) for offset in offsets[:-1]),
        counts=tuple(entry[3] for entry in entries),
        faces=(np.concatenate(faces) if faces else np.empty((0, 3))).astype(np.int32),
        rebuilt=tuple(entry[5] for entry in entries),
    )


def faceless_objects(objects: list[bpy.types.Object], layout: MeshLayout) -> list[str]:
    """Each object that renders geometry but brings no vertices into `layout`, as "name (kind)".

    A bare curve, plain hair curves, points, grease pencil or a volume has no faces to track; a
    metaball other than its family's basis ("Ball.001" beside "Ball") is drawn in the basis's
    surface, so it is not listed.
    """
    contributing = {owner for owner, count in zip(layout.owners, layout.counts) if count}
    return [
        f"{obj.name} ({SURFACE_KINDS[obj.type]})"
        for obj in objects
        if obj.type in SURFACE_KINDS
        and obj.name not in contributing
        and not (obj.type == "META" and obj.name[-1:].isdigit())
    ]


def gather_positions(
    depsgraph: bpy.types.Depsgraph, layout: MeshLayout, out: np.ndarray
) -> tuple[set[str], np.ndarray]:
    """Fill `out` [N, 3] float32 with world positions at the current frame.

    Returns the names of entries whose vertex count (or, for rebuilt meshes, triangles) differs from
    the layout or that vanished (their rows are left untouched) and a per-entry render flag (False
    where `hide_render` is animated on).
    """
    changed = set()
    slots = {}
    for index, key in enumerate(layout.instance_keys):
        if key is None:
            obj = bpy.data.objects[layout.names[index]].evaluated_get(depsgraph)
            if not _read(obj.data, obj.matrix_world, out, layout, index):
                changed.add(layout.names[index])
        else:
            slots[key] = index
    if slots:
        for instance in depsgraph.object_instances:
            index = slots.pop(_instance_key(instance), None)
            if index is not None and not _read(instance.object.data, instance.matrix_world, out, layout, index):
                changed.add(layout.names[index])
        changed.update(layout.names[index] for index in slots.values())  # instances that are gone
    hidden = {owner: bpy.data.objects[owner].hide_render for owner in set(layout.owners)}
    rendered = np.array([not hidden[owner] for owner in layout.owners], dtype=bool)
    return changed, rendered


def _read(mesh: bpy.types.Mesh, matrix_world, out: np.ndarray, layout: MeshLayout, index: int) -> bool:
    """Write one mesh's world positions into its rows; False if its vertex count or rebuilt triangles changed."""
    offset, count, rebuilt = layout.offsets[index], layout.counts[index], layout.rebuilt[index]
    if len(mesh.vertices) != count or (rebuilt is not None and not np.array_equal(_triangles(mesh), rebuilt)):
        return False
    if not count:  # a mesh without vertices has no position attribute
        return True
    rows = out[offset : offset + count]
    # The position attribute reads as one block; `vertices.foreach_get("co")` goes vertex by vertex.
    mesh.attributes["position"].data.foreach_get("vector", rows.reshape(-1))
    matrix = np.array(matrix_world, dtype=np.float32)
    np.matmul(rows, matrix[:3, :3].T, out=rows)
    rows += matrix[:3, 3]
    return True


def _triangles(mesh: bpy.types.Mesh) -> np.ndarray:
    """The mesh's triangulation as int32 [F, 3] vertex indices."""
    triangles = mesh.loop_triangles
    indices = np.empty(len(triangles) * 3, dtype=np.int32)
    triangles.foreach_get("vertices", indices)
    return indices.reshape(-1, 3)


def _instance_key(instance: bpy.types.DepsgraphObjectInstance) -> InstanceKey | None:
    """A mesh instance's identity across frames, or None for non-instances and non-meshes."""
    if not instance.is_instance or instance.object.type != "MESH" or instance.parent is None:
        return None
    return (instance.parent.original.name, instance.object.name, tuple(instance.persistent_id))


def _is_own_mesh(key: InstanceKey) -> bool:
    """Whether an instance is the mesh its instancer itself evaluates to (a curve's bevel, a text's fill)."""
    return key[0] == key[1] and all(i == UNUSED_ID for i in key[2][1:])


def _instance_name(key: InstanceKey) -> str:
    ids = [i for i in key[2] if i != UNUSED_ID]
    return f"{key[0]} instance {'.'.join(map(str, ids))} ({key[1]})"
