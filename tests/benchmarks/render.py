"""Benchmark of the tracking-video renderer (`das_core.tracking.render.render_tracking`).

Run: `python tests/benchmarks/render.py [--repeat 5] [--threads 2] [--only TEXT] [--against REV]
[--encoding exact|reference]`.
Prints a markdown table of
the best and median wall time over the repeats for each case, the best CPU time of the process
(all threads; less sensitive to other work on the machine than wall time) and the load average:
- the issue's target: a UV sphere of 256 x 128 segments (32 k vertices, 65 k triangles) moving and
  spinning before a fixed camera, 49 frames at 720 x 480, mesh mode (target 0.3 s, limit 1 s);
- points mode: 4,900 points x 49 frames in both styles (target under 0.1 s);
- growth with vertex count (spheres of 8 k to 130 k triangles at the same size on screen);
- growth with covered pixels (the 65 k-triangle sphere from far to filling the frame, and a close-up
  of a large two-triangle plane and of a 20 k-triangle plane that cover every pixel);
- a 1920 x 1080 scene (a 100 k-vertex sphere) for the model's 720 x 480: rendered at its own size
  and letterboxed afterwards by `fit_frames` (the old way) against drawn straight into the
  letterbox with `fit=(720, 480)`.
`--against REV` renders every case with the renderer as it was at git revision REV too (the module
`das_core/render.py` or `das_core/tracking/render.py`, or the package `das_core/tracking/render/`) and
says whether the frames are bit-identical (the check that a speed-up changed nothing) or else how
many channel values differ and by how much at most. `--encoding` picks mesh mode's encoding
(default: exact); a renderer from before encodings had only "reference", compared without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from das_core.tracking.render import ENCODINGS, render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import fit_frames

WIDTH, HEIGHT, FRAMES = 720, 480, 49


def uv_sphere(segments: int, rings: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit UV sphere like Blender's: (vertices [N, 3], triangles [F, 3])."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 0, 1]], body, [[0, 0, -1]]])
    ring = lambda r: 1 + r * segments + (np.arange(segments) % segments)  # noqa: E731
    nxt = lambda r: 1 + r * segments + ((np.arange(segments) + 1) % segments)  # noqa: E731
    faces = [np.stack([np.zeros(segments, int), nxt(0), ring(0)], axis=1)]
    for r in range(rings - 2):
        faces.append(np.stack([ring(r), nxt(r), nxt(r + 1)], axis=1))
        faces.append(np.stack([ring(r), nxt(r + 1), ring(r + 1)], axis=1))
    last = len(vertices) - 1
    faces.append(np.stack([ring(rings - 2), nxt(rings - 2), np.full(segments, last)], axis=1))
    return vertices.astype(np.float32), np.concatenate(faces).astype(np.int32)


def grid_plane(cuts: int) -> tuple[np.ndarray, np.ndarray]:
    """Square plane in z = 0 from -1 to 1, split into cuts x cuts quads (2 triangles each)."""
    s = np.linspace(-1, 1, cuts + 1)
    x, y = np.meshgrid(s, s, indexing="xy")
    vertices = np.stack([x, y, np.zeros_like(x)], axis=-1).reshape(-1, 3)
    i = (np.arange(cuts)[:, None] * (cuts + 1) + np.arange(cuts)[None]).ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + cuts + 2], 1), np.stack([i, i + cuts + 2, i + cuts + 1], 1)])
    return vertices.astype(np.float32), faces.astype(np.int32)


def fixed_camera(frames: int, fov_degrees: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV camera at the origin looking down +z (world = camera), 720 x 480."""
    f = WIDTH / 2 / np.tan(np.radians(fov_degrees) / 2)
    intrinsics = np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1]])
    return np.tile(np.eye(4), (frames, 1, 1)), np.tile(intrinsics, (frames, 1, 1))


def moving_tracks(vertices: np.ndarray, faces: np.ndarray | None, distance: float, scale: float = 1.0) -> Tracks:
    """The object spins a full turn about its tilted axis while sliding left to right at `distance`."""
    t = np.linspace(0, 1, FRAMES)
    angle = 2 * np.pi * t
    cos, sin = np.cos(angle), np.sin(angle)
    spin = np.zeros((FRAMES, 3, 3))
    spin[:, 0, 0], spin[:, 0, 2], spin[:, 1, 1], spin[:, 2, 0], spin[:, 2, 2] = cos, sin, 1, -sin, cos
    tilt = np.array([[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]])
    centre = np.stack([0.3 * distance * (t - 0.5), 0.05 * distance * np.sin(angle), np.full(FRAMES, distance)], 1)
    points = np.einsum("tij,nj->tni", spin @ tilt, vertices * scale) + centre[:, None]
    world_to_camera, intrinsics = fixed_camera(FRAMES)
    return Tracks(
        points=points, world_to_camera=world_to_camera, intrinsics=intrinsics, width=WIDTH, height=HEIGHT, faces=faces
    )


def plane_close_up(cuts: int) -> Tracks:
    """A 20 x 20 plane 1-2 units before the camera, tilted and drifting: every pixel covered."""
    vertices, faces = grid_plane(cuts)
    t = np.linspace(0, 1, FRAMES)
    tilt = 0.5
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    points = (vertices * 10) @ rotation.T
    points = points[None] + np.stack([0.2 * t, 0.1 * t, 1.5 + 0.3 * t], 1)[:, None]
    world_to_camera, intrinsics = fixed_camera(FRAMES)
    return Tracks(
        points=points, world_to_camera=world_to_camera, intrinsics=intrinsics, width=WIDTH, height=HEIGHT, faces=faces
    )


def time_case(render, tracks: Tracks, repeat: int, **options) -> tuple[float, float, float, np.ndarray]:
    """(best wall s, median wall s, best CPU s, frames) of `render(tracks, **options)` over `repeat`
    runs after one warm-up."""
    frames = render(tracks, **options)
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        render(tracks, **options)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(walls), min(cpus), frames


def render_then_fit(tracks: Tracks, **options) -> np.ndarray:
    """The old way to the model's size: render at the tracks' size, then letterbox by resizing."""
    return fit_frames(render_tracking(tracks, **options), WIDTH, HEIGHT)


def renderer_at(revision: str):
    """The renderer as it was at git `revision`, imported beside this tree's as `render_before`: the
    module `das_core/render.py` or `das_core/tracking/render.py`, or the package
    `das_core/tracking/render/` (its imports of its own modules renamed to `render_before`)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout

    paths = ["das_core/tracking/render", "das_core/tracking/render.py", "das_core/render.py"]
    found = git("ls-tree", "-r", "--name-only", revision, "--", *paths).split()
    if not found:
        sys.exit(f"no renderer at {revision}: none of {', '.join(paths)}")
    folder = Path(tempfile.mkdtemp(prefix="das-render-"))
    package = [path for path in found if path.startswith(paths[0] + "/") and path.endswith(".py")]
    if package:
        location = folder / "render_before"
        location.mkdir()
        for path in package:
            source = git("show", f"{revision}:{path}").replace("das_core.tracking.render", "render_before")
            (location / Path(path).name).write_text(source)
        spec = importlib.util.spec_from_file_location(
            "render_before", location / "__init__.py", submodule_search_locations=[str(location)]
        )
    else:
        (folder / "render_before.py").write_text(git("show", f"{revision}:{found[0]}"))
        spec = importlib.util.spec_from_file_location("render_before", folder / "render_before.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def use_threads(package: str, threads: int | None) -> int:
    """The renderer's thread count (`_THREADS`, in whichever module of `package` holds it), first
    set to `threads` unless that is None."""
    for name, module in list(sys.modules.items()):
        if (name == package or name.startswith(package + ".")) and hasattr(module, "_THREADS"):
            if threads is not None:
                module._THREADS = threads
            return module._THREADS
    sys.exit(f"no _THREADS in {package}")


def hd_tracks(vertices: np.ndarray, faces: np.ndarray) -> Tracks:
    """`moving_tracks` seen by a 1920 x 1080 camera with the same horizontal field of view."""
    tracks = moving_tracks(vertices, faces, 4.0)
    scale = 1920 / WIDTH
    intrinsics = tracks.intrinsics * np.array([scale, scale, 1.0])[:, None]
    intrinsics[:, 1, 2] = 1080 / 2
    return Tracks(
        points=tracks.points,
        world_to_camera=tracks.world_to_camera,
        intrinsics=intrinsics,
        width=1920,
        height=1080,
        faces=faces,
    )


def render_before(before, tracks: Tracks, options: dict) -> np.ndarray | None:
    """The frames of the renderer `before` for `render_tracking(tracks, **options)`, or None when it
    lacks an option. One from before encodings renders only the "reference" encoding."""
    options = dict(options)
    if "encoding" not in inspect.signature(before.render_tracking).parameters:
        if options.pop("encoding", "reference") != "reference":
            return None
    try:
        return before.render_tracking(tracks, **options)
    except TypeError:  # an option REV did not have yet
        return None


def compare(old: np.ndarray, new: np.ndarray) -> str:
    """'same' for bit-identical frames, else the share of channel values that differ and the
    largest difference in 8-bit levels."""
    if old.shape != new.shape:
        return f"shape {old.shape} vs {new.shape}"
    difference = np.abs(old.astype(np.int16) - new)
    changed = np.count_nonzero(difference)
    return "same" if not changed else f"{changed / difference.size:.1e} of values differ, by up to {difference.max()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, help="renderer threads (default: the renderer's own)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    parser.add_argument("--against", metavar="REV", help="check the frames against the renderer at git REV")
    parser.add_argument("--encoding", choices=ENCODINGS, default="exact", help="mesh mode's encoding")
    args = parser.parse_args()
    args.threads = use_threads("das_core.tracking.render", args.threads)
    before = renderer_at(args.against) if args.against else None
    if before is not None:
        use_threads("render_before", args.threads)

    cases: list[tuple[str, Tracks, dict]] = []
    sphere = uv_sphere(256, 128)
    cases.append(("sphere 256x128 (32,514 v, 65,024 tris), mesh  [target 0.3 s]", moving_tracks(*sphere, 4.0), {}))
    grid = uv_sphere(70, 72)[0][:4900]
    cases.append(
        (
            "4,900 points, spatialtracker  [target <0.1 s]",
            moving_tracks(grid, None, 4.0),
            {"mode": "points", "point_style": "spatialtracker"},
        )
    )
    cases.append(
        (
            "4,900 points, cotracker  [target <0.1 s]",
            moving_tracks(grid, None, 4.0),
            {"mode": "points", "point_style": "cotracker"},
        )
    )
    for segments, rings in ((64, 32), (128, 64), (256, 128), (512, 256)):
        mesh = uv_sphere(segments, rings)
        cases.append(
            (
                f"vertices: sphere {segments}x{rings} ({len(mesh[0]):,} v, {len(mesh[1]):,} tris)",
                moving_tracks(*mesh, 4.0),
                {},
            )
        )
    for distance in (16.0, 8.0, 4.0, 2.2):
        cases.append((f"pixels: sphere 256x128 at distance {distance:g}", moving_tracks(*sphere, distance), {}))
    cases.append(("pixels: close-up plane, 2 tris", plane_close_up(1), {}))
    cases.append(("pixels: close-up plane, 100x100 quads (20,000 tris)", plane_close_up(100), {}))
    hd = hd_tracks(*uv_sphere(512, 196))
    cases.append(("1920x1080 sphere 512x196 (99,842 v), rendered at 1080p then fit_frames", hd, {"then_fit": True}))
    cases.append(("1920x1080 sphere 512x196 (99,842 v), fit=(720, 480)", hd, {"fit": (WIDTH, HEIGHT)}))

    print(
        f"threads: {args.threads}, repeats: {args.repeat}, encoding: {args.encoding}, "
        f"load average at start: {os.getloadavg()[0]:.1f}"
    )
    against = f" | frames against {args.against}" if before else ""
    print(
        f"| case ({FRAMES} frames, {WIDTH}x{HEIGHT}) | best wall s | median wall s | best CPU s | pixels covered{against} |"
    )
    print("|---|---|---|---|---|" + ("---|" if before else ""))
    for name, tracks, options in cases:
        if args.only not in name:
            continue
        render = render_then_fit if options.pop("then_fit", False) else render_tracking
        if options.get("mode", "mesh") == "mesh":
            options["encoding"] = args.encoding
        best, median, cpu, frames = time_case(render, tracks, args.repeat, **options)
        row = f"| {name} | {best:.3f} | {median:.3f} | {cpu:.3f} | {(frames.max(axis=-1) > 0).mean():.0%} |"
        if before is not None:
            old = render_before(before, tracks, options)
            if old is None:
                row += " n/a |"
            else:
                old = fit_frames(old, WIDTH, HEIGHT) if render is render_then_fit else old
                row += f" {compare(old, frames)} |"
        print(row, flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
