"""In-between frames from exact motion against holding, cross-fading and optical flow, on the
example scenes (a benchmark, not a test).

Run: `PYTHONPATH=. python tests/benchmarks/inbetween.py [--size 240x160] [--step 3] [--sheet PNG]`
(needs the `bpy` module and opencv-python-headless), or with `--timing [--repeat N]` for the cost
alone (below).

For each example .blend (walk_cycle, camera_orbit, thrown_ball: a ball thrown in front of crates),
every mesh gets a UV-mapped colour-grid texture; every frame of the range is rendered with
Workbench (flat light, no shadows: the texture alone carries the motion) and the tracks of every
frame are exported with `blender_addon.export.export_tracks(step=1)`. The true renders at every
`--step`-th frame play the generated frames; every other frame between two of them is made four
ways and compared with its true render (PSNR, SSIM on luma):
- hold: the nearer generated frame;
- cross-fade: the two blended by time;
- flow: OpenCV DIS optical flow both ways, the in-between's flows by Super SloMo's linear
  approximation, both frames warped (cv2.remap) and blended by time;
- exact: `das_core.tracking.inbetween.Inbetweener`.
Then the cost of one exact in-between frame at 720 x 480 (generated frames upscaled from the
renders; the depth buffers of the two sources drawn once beforehand), and a contact sheet of
true / hold / flow / exact for the thrown ball's frame where flow does worst.

`--timing` renders nothing: for each example's saved tracks (`examples/NAME/tracks.npz`, 720 x 480,
its `reference.png` playing both generated frames 0 and 3) it times frame 1, best of `--repeat`
runs, as it runs (bands of rows on threads) and on one thread per stage of `Inbetweener` (each
stage's best over the runs, so they need not add up), with the load average before and after.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bpy
import cv2
import numpy as np
from PIL import Image, ImageDraw

from blender_addon.export import export_tracks
from das_core.tracking import inbetween
from das_core.tracking.inbetween import Inbetweener
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video

ROOT = Path(__file__).resolve().parents[2]
SCENES = ("walk_cycle", "camera_orbit", "thrown_ball")


def textured_scene(path: Path, width: int, height: int) -> bpy.types.Scene:
    """Open `path` and give every mesh a colour-grid texture on box-projected UVs."""
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.view_settings.view_transform = "Standard"
    shading = scene.display.shading
    shading.light, shading.color_type = "FLAT", "TEXTURE"
    shading.show_shadows = shading.show_cavity = False
    image = bpy.data.images.new("grid", 1024, 1024)
    image.generated_type = "COLOR_GRID"
    material = bpy.data.materials.new("grid")
    material.use_nodes = True
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    material.node_tree.nodes.active = node
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        mesh = obj.data
        mesh.materials.clear()
        mesh.materials.append(material)
        _box_uvs(mesh)
    return scene


def _box_uvs(mesh: bpy.types.Mesh) -> None:
    """UVs from object-space positions, projected along each face's dominant normal axis."""
    layer = mesh.uv_layers.new(name="box") if not len(mesh.uv_layers) else mesh.uv_layers[0]
    vertices = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", vertices)
    vertices = vertices.reshape(-1, 3)
    loop_vertex = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vertex)
    normals = np.empty(len(mesh.polygons) * 3)
    mesh.polygons.foreach_get("normal", normals)
    totals = np.empty(len(mesh.polygons), dtype=np.int64)
    mesh.polygons.foreach_get("loop_total", totals)
    axis = np.repeat(np.abs(normals.reshape(-1, 3)).argmax(axis=1), totals)
    position = vertices[loop_vertex]
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    uv = np.take_along_axis(position, keep, axis=1) * 0.25
    layer.data.foreach_set("uv", uv.ravel().astype(np.float32))


def render_all(scene: bpy.types.Scene, folder: Path) -> np.ndarray:
    """Workbench renders of every frame of the range, uint8 [T, H, W, 3]."""
    frames = []
    for index, frame in enumerate(range(scene.frame_start, scene.frame_end + 1)):
        scene.frame_set(frame)
        scene.render.filepath = str(folder / f"frame_{index:04d}.png")
        bpy.ops.render.render(write_still=True)
        frames.append(read_video(folder / f"frame_{index:04d}.png")[0])
    return np.stack(frames)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the luma of two RGB frames (Wang et al.: Gaussian window, sigma 1.5)."""
    x, y = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in (a, b))

    def blur(f: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(f, (11, 11), 1.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())


class Flow:
    """DIS optical-flow interpolation between two frames (both flows computed once per pair)."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        gray_a, gray_b = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (a, b))
        self.a, self.b = a, b
        self.ab, self.ba = dis.calc(gray_a, gray_b, None), dis.calc(gray_b, gray_a, None)
        height, width = a.shape[:2]
        self.grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)

    def at(self, s: float) -> np.ndarray:
        to_a = -(1 - s) * s * self.ab + s * s * self.ba
        to_b = (1 - s) ** 2 * self.ab - s * (1 - s) * self.ba
        warp_a, warp_b = (
            cv2.remap(f, self.grid + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
            for f, flow in ((self.a, to_a), (self.b, to_b))
        )
        return np.clip((1 - s) * warp_a + s * warp_b + 0.5, 0, 255).astype(np.uint8)


def compare(tracks: Tracks, true: np.ndarray, step: int) -> tuple[dict[str, list[tuple[float, float]]], dict]:
    """Every method's (PSNR, SSIM) per in-between frame, and the frames of each, by method."""
    keys = list(range(0, len(true), step))
    exact = Inbetweener(tracks, {k: true[k] for k in keys})
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in ("hold", "cross-fade", "flow", "exact")}
    made: dict = {}
    for a, b in itertools.pairwise(keys):
        flow = Flow(true[a], true[b])
        for t in range(a + 1, b):
            s = (t - a) / (b - a)
            frames = {
                "hold": true[a] if s <= 0.5 else true[b],
                "cross-fade": np.clip((1 - s) * true[a] + s * true[b].astype(np.float64) + 0.5, 0, 255).astype(
                    np.uint8
                ),
                "flow": flow.at(s),
                "exact": exact.frame(t),
            }
            for method, frame in frames.items():
                scores[method].append((psnr(frame, true[t]), ssim(frame, true[t])))
            made[t] = frames
    return scores, made


# The stages of `Inbetweener.frame`, by method: "rest" is the frame's time outside them.
STAGES = {
    "rasterise": "_surfaces",
    "still pixels": "_still",
    "fixed pixels": "_fixed",
    "moving pixels": "_moving",
    "lost pixels": "_lost",
    "output": "_write",
}


def stage_times(exact: Inbetweener, t: int, repeat: int) -> dict[str, float]:
    """Best wall ms over `repeat` runs of `exact.frame(t)` as it runs ("total", its bands of rows
    on threads), then on one thread ("one thread") with each of its `STAGES` and the rest (each
    its own best: they need not add up). Run once first, so that the sources' depth buffers
    are drawn."""
    best = {"total": _best_ms(lambda: exact.frame(t), repeat)}
    spent = dict.fromkeys(STAGES, 0.0)

    def timed(stage: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = method(*args, **kwargs)
            spent[stage] += time.perf_counter() - start
            return result

        return run

    threads, inbetween._THREADS = inbetween._THREADS, 1
    for stage, name in STAGES.items():
        setattr(exact, name, timed(stage, getattr(exact, name)))
    for _ in range(repeat):
        spent.update(dict.fromkeys(STAGES, 0.0))
        start = time.perf_counter()
        exact.frame(t)
        spent["one thread"] = time.perf_counter() - start
        spent["rest"] = spent["one thread"] - sum(spent[stage] for stage in STAGES)
        for stage, seconds in spent.items():
            best[stage] = min(best.get(stage, np.inf), 1000 * seconds)
    for name in STAGES.values():
        delattr(exact, name)
    inbetween._THREADS = threads
    return best


def _best_ms(run: Callable[[], Any], repeat: int) -> float:
    """The best wall ms of `repeat` calls of `run`, after one unmeasured."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def cost_at_720(tracks: Tracks, true: np.ndarray, step: int, repeat: int = 15) -> dict[str, float]:
    """`stage_times` of the exact in-between frame 1 at 720 x 480 (generated frames 0 and `step`,
    upscaled)."""
    big = {k: np.asarray(Image.fromarray(true[k]).resize((720, 480), Image.BILINEAR)) for k in (0, step)}
    return stage_times(Inbetweener(tracks, big), 1, repeat)


def timing(repeat: int) -> None:
    """`--timing`: `stage_times` of frame 1 of the examples' saved tracks at 720 x 480."""
    print(f"best of {repeat} ms per in-between frame at 720x480 (frame 1 from 0 and 3)\n")
    print(f"| scene | triangles | total | one thread | {' | '.join(STAGES)} | rest | load before / after |")
    print("|---|---|---|---|" + "---|" * len(STAGES) + "---|---|")
    for name in ("thrown_ball", "walk_cycle", "camera_orbit"):
        tracks = Tracks.load(ROOT / "examples" / name / "tracks.npz")
        image = np.asarray(Image.open(ROOT / "examples" / name / "reference.png").convert("RGB"))
        exact = Inbetweener(tracks, {0: image, 3: image})
        load = Path("/proc/loadavg").read_text().split()[0]
        best = stage_times(exact, 1, repeat)
        cells = " | ".join(f"{best[stage]:.1f}" for stage in ("one thread", *STAGES, "rest"))
        faces = len(tracks.faces) if tracks.faces is not None else 0
        after = Path("/proc/loadavg").read_text().split()[0]
        print(f"| {name} | {faces:,} | {best['total']:.1f} | {cells} | {load} / {after} |")


def sequence_timing(repeat: int) -> None:
    """`--timing --sequence`: whole shots of the examples' saved tracks at 720 x 480 in timeline
    order (`scene_frames`), every 3rd frame generated (their `reference.png`)."""
    print(f"best of {repeat} runs over each whole shot at 720x480, every 3rd frame generated\n")
    print("| scene | timeline frames | in-betweens | ms per timeline frame | ms per in-between | load before / after |")
    print("|---|---|---|---|---|---|")
    for name in ("thrown_ball", "walk_cycle", "camera_orbit"):
        tracks = Tracks.load(ROOT / "examples" / name / "tracks.npz")
        image = np.asarray(Image.open(ROOT / "examples" / name / "reference.png").convert("RGB"))
        generated = dict.fromkeys(range(0, tracks.num_frames, 3), image)
        load = Path("/proc/loadavg").read_text().split()[0]

        best = _best_ms(lambda: _drain(scene_frames(tracks, generated)), repeat)  # noqa: B023 (called here)
        after = Path("/proc/loadavg").read_text().split()[0]
        count = tracks.num_frames - len(generated)
        print(f"| {name} | {tracks.num_frames} | {count} | {best / tracks.num_frames:.1f} | {best / count:.1f} "
              f"| {load} / {after} |")  # fmt: skip


def _drain(frames: Iterator[np.ndarray]) -> None:
    """Make every frame of `frames`, keeping none."""
    for _ in frames:
        pass


def scene_frames(tracks: Tracks, generated: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    """Every timeline frame in order, as `das_core.tracking.shot.scene_frames` makes them."""
    exact = Inbetweener(tracks, generated)
    for t in range(tracks.num_frames):
        yield exact.frame(t)


def contact_sheet(true: np.ndarray, made: dict, path: Path) -> int:
    """true / hold / flow / exact of the frame where flow is furthest from the truth; returns t."""
    t = max(made, key=lambda k: -psnr(made[k]["flow"], true[k]))
    panels = [("true", true[t]), ("hold", made[t]["hold"]), ("flow", made[t]["flow"]), ("exact", made[t]["exact"])]
    height, width = true.shape[1:3]
    sheet = Image.new("RGB", (4 * width + 6, height), "white")
    for i, (name, frame) in enumerate(panels):
        sheet.paste(Image.fromarray(frame), (i * (width + 2), 0))
        ImageDraw.Draw(sheet).text((i * (width + 2) + 4, 4), f"{name} (frame {t})", fill="white")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="240x160", help="render size WxH (default: %(default)s)")
    parser.add_argument("--step", type=int, default=3, help="generated frames every STEP frames (default: 3)")
    parser.add_argument("--sheet", type=Path, default=Path("/tmp/inbetween_sheet.png"), help="contact sheet PNG")
    parser.add_argument("--timing", action="store_true", help="only time the stages of in-betweens at 720x480")
    parser.add_argument("--sequence", action="store_true", help="with --timing: time whole shots in timeline order")
    parser.add_argument("--repeat", type=int, default=20, help="runs per timing, best taken (default: 20)")
    args = parser.parse_args()
    if args.timing and args.sequence:
        sequence_timing(args.repeat)
        return
    if args.timing:
        timing(args.repeat)
        return
    width, height = (int(v) for v in args.size.split("x"))
    print("| scene | in-betweens | hold PSNR / SSIM | cross-fade | flow (DIS) | exact | exact - flow dB |")
    print("|---|---|---|---|---|---|---|")
    for name in SCENES:
        with tempfile.TemporaryDirectory() as folder:
            scene = textured_scene(ROOT / "examples" / name / f"{name}.blend", width, height)
            true = render_all(scene, Path(folder))
            tracks = export_tracks(scene, step=1)
        scores, made = compare(tracks, true, args.step)
        mean = {m: np.mean(v, axis=0) for m, v in scores.items()}
        cells = " | ".join(f"{mean[m][0]:.2f} / {mean[m][1]:.3f}" for m in scores)
        worst = min(p - f for (p, _), (f, _) in zip(scores["exact"], scores["flow"]))
        print(f"| {name} | {len(scores['exact'])} | {cells} | {mean['exact'][0] - mean['flow'][0]:+.2f} "
              f"(worst frame {worst:+.2f}) |")  # fmt: skip
        if name == "thrown_ball":
            t = contact_sheet(true, made, args.sheet)
            cost = cost_at_720(tracks, true, args.step, args.repeat)
            faces = len(tracks.faces) if tracks.faces is not None else 0
    print(f"\ncontact sheet (thrown_ball frame {t}): {args.sheet}")
    print(f"exact in-between at 720x480, thrown_ball ({faces:,} triangles): best {cost['total']:.1f} ms per frame, "
          f"of which rasterising with motion attributes {cost['rasterise']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
