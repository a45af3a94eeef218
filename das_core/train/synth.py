"""`das dataset synth`: training samples from Blender scenes, with exact (ground-truth) tracking videos.

For each scene and variant, a Blender process of its own (this Python's `bpy` module, or a Blender
executable) opens the .blend, applies the variant (engine, background colour or HDRI), exports the
ground-truth tracks with the add-on's `export_tracks` and renders the RGB frames at exactly the
exported frames. This process then renders the tracking video from those tracks
(`das_core.tracking.render.render_tracking`, mesh mode, as DaS made its synthetic data), writes
`videos/NNNNN.mp4`, `tracking/NNNNN_tracking.mp4`, `images/NNNNN.png` (the first frame) and
`tracks/NNNNN.npz` (the ground truth, to re-render the tracking video in another mode), and
appends one line to `prompt.txt`, `videos.txt`, `trackings.txt` and `images.txt`.

Resumable: `synth.jsonl` records each finished (scene, variant); a rerun skips them, and lines are
appended only once every file of a sample is written. No torch and no bpy in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from das_core.errors import DasError, plural
from das_core.train.layout import IMAGES_FILE, PROMPT_FILE, TRACKINGS_FILE, VIDEOS_FILE

ENGINES = ("workbench", "eevee", "cycles")
HDRI_SUFFIXES = (".hdr", ".exr")
MANIFEST_FILE = "synth.jsonl"
DEFAULT_TEMPLATE = "A 3D animated scene: {name}."
RESULT_MARK = "DAS-SYNTH-RESULT: "
ERROR_MARK = "DAS-SYNTH-ERROR: "
TRACKS_MARK = "DAS-SYNTH-TRACKS-READY"

# Runs inside Blender: a real file, so linters and editors read it.
_SCRIPT = Path(__file__).with_name("synth_in_blender.py")


@dataclass(frozen=True)
class SynthOptions:
    """How to synthesise: engine, background, variants, size and prompt template."""

    engine: str = "workbench"
    background: str = "random-color"  # or "hdri"
    hdri_dir: Path | None = None
    variants: int = 1
    num_frames: int = 49
    width: int = 720
    height: int = 480
    render_samples: int = 64
    template: str = DEFAULT_TEMPLATE
    blender: str | None = None
    fps: float = 8.0


@dataclass(frozen=True)
class SynthSample:
    """One written sample: its line number (0-based index) and prompt."""

    index: int
    key: str
    prompt: str


def synthesise(
    scenes: list[Path], out: str | os.PathLike, options: SynthOptions, *, progress: bool = True
) -> list[SynthSample]:
    """Render every (scene, variant) not yet in `out`'s manifest and append it to the dataset."""
    from tqdm import tqdm

    out = Path(out)
    _check_options(options)
    scenes = [Path(scene).resolve() for scene in scenes]
    missing = [str(scene) for scene in scenes if not scene.is_file()]
    if missing:
        raise DasError(f"{plural(len(missing), 'scene file')} not found: {', '.join(missing)}")
    hdris = _hdris(options)
    out.mkdir(parents=True, exist_ok=True)
    done = _done_keys(out)
    next_index = _dataset_length(out)
    jobs = [(scene, variant) for scene in scenes for variant in range(options.variants)]
    todo = [(scene, variant) for scene, variant in jobs if _key(scene, variant) not in done]
    written = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="synthesising", unit="sample", disable=not progress)
    for scene, variant in todo:
        seed = zlib.crc32(f"{scene.name}#{variant}".encode())
        hdri = hdris[seed % len(hdris)] if hdris else None
        bar.set_postfix_str(f"{scene.stem} #{variant}")
        written.append(_synthesise_one(scene, variant, seed, hdri, next_index, out, options))
        next_index += 1
        bar.update(1)
    bar.close()
    return written


def example_scenes(folder: str | os.PathLike) -> list[Path]:
    """Build the example scenes (`examples/scenes/*.py`) into `folder` as .blend files; built ones are reused."""
    scripts_dir = Path(__file__).resolve().parents[2] / "examples" / "scenes"
    scripts = sorted(path for path in scripts_dir.glob("*.py") if path.name != "scene_setup.py")
    if not scripts:
        raise DasError(f"no example scenes in {scripts_dir}; run from a source checkout or pass --scenes")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blends = []
    for script in scripts:
        blend = folder / f"{script.stem}.blend"
        if not blend.is_file():
            finished = subprocess.run(
                [sys.executable, str(script), str(blend)], capture_output=True, text=True, errors="replace"
            )
            if finished.returncode != 0 or not blend.is_file():
                tail = " | ".join(finished.stderr.strip().splitlines()[-3:])
                raise DasError(f"building example scene {script.name} failed: {tail}")
        blends.append(blend)
    return blends


def _synthesise_one(
    scene: Path, variant: int, seed: int, hdri: Path | None, index: int, out: Path, options: SynthOptions
) -> SynthSample:
    from das_core.tracking.render import render_tracking
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video, write_mp4

    key = _key(scene, variant)
    with tempfile.TemporaryDirectory(prefix="das-synth-") as work:
        work = Path(work)
        frames_dir = work / "frames"
        frames_dir.mkdir()

        def on_tracks(tracks_path: Path) -> None:  # runs while Blender renders the frames
            tracks = Tracks.load(tracks_path)
            tracking = render_tracking(tracks, mode="mesh", num_frames=tracks.num_frames)
            write_mp4(work / "tracking.mp4", tracking, fps=options.fps)

        result = _run_blender(scene, options, seed, hdri, work / "tracks.npz", frames_dir, on_tracks)
        write_mp4(work / "video.mp4", read_video(frames_dir), fps=options.fps)
        name = f"{index:05d}"
        files = {
            work / "video.mp4": Path("videos") / f"{name}.mp4",
            work / "tracking.mp4": Path("tracking") / f"{name}_tracking.mp4",
            frames_dir / "frame_00000.png": Path("images") / f"{name}.png",
            work / "tracks.npz": Path("tracks") / f"{name}.npz",  # to re-render the tracking video later
        }
        for source, target in files.items():
            (out / target.parent).mkdir(parents=True, exist_ok=True)
            shutil.move(source, out / target)
        paths = dict(zip(("video", "tracking", "image", "tracks"), files.values()))
    prompt = result["prompt"] or options.template.format(
        name=scene.stem.replace("_", " "), variant=variant, background=result["background"]
    )
    prompt = " ".join(prompt.split())
    lines = {
        PROMPT_FILE: prompt,
        VIDEOS_FILE: paths["video"].as_posix(),
        TRACKINGS_FILE: paths["tracking"].as_posix(),
        IMAGES_FILE: paths["image"].as_posix(),
    }
    for file_name, line in lines.items():
        with open(out / file_name, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    record = {"key": key, "index": index, "scene": str(scene), "variant": variant, "seed": seed, **result}
    with open(out / MANIFEST_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
    return SynthSample(index, key, prompt)


def _run_blender(
    scene: Path,
    options: SynthOptions,
    seed: int,
    hdri: Path | None,
    tracks: Path,
    frames_dir: Path,
    on_tracks: Callable[[Path], None],
) -> dict:
    """Run the synthesis script; `on_tracks(tracks)` runs here while Blender renders the frames."""
    args = json.dumps(
        {
            "package_root": str(Path(__file__).resolve().parents[2]),
            "blend": str(scene),
            "engine": options.engine,
            "background": options.background,
            "hdri": str(hdri) if hdri else None,
            "seed": seed,
            "num_frames": options.num_frames,
            "width": options.width,
            "height": options.height,
            "render_samples": options.render_samples,
            "tracks": str(tracks),
            "frames_dir": str(frames_dir),
        }
    )
    command = _blender_command(options.blender) + ["--", args]
    with tempfile.TemporaryFile("w+", errors="replace") as log:  # a file, so a chatty stderr never blocks
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, errors="replace")
        stdout = []
        try:
            for line in process.stdout:
                stdout.append(line)
                if line.startswith(TRACKS_MARK):
                    on_tracks(tracks)
        finally:
            process.stdout.close()
            process.wait()
        log.seek(0)
        stderr = log.read()
    errors = [line[len(ERROR_MARK) :] for line in stderr.splitlines() if line.startswith(ERROR_MARK)]
    if errors:
        raise DasError(f"{scene.name}: {errors[-1]}")
    results = [line[len(RESULT_MARK) :].strip() for line in stdout if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not results:
        tail = " | ".join((stderr + "".join(stdout)).strip().splitlines()[-5:])
        raise DasError(f"Blender failed on {scene.name} (exit code {process.returncode}): {tail}")
    return json.loads(results[-1])


def _blender_command(blender: str | None) -> list[str]:
    if blender is not None:
        executable = shutil.which(blender)
        if executable is None:
            raise DasError(f"Blender executable {blender!r} not found; pass the full path to blender")
        return [executable, "-b", "--factory-startup", "--python-exit-code", "3", "--python", str(_SCRIPT)]
    if importlib.util.find_spec("bpy") is None:
        raise DasError(
            "this Python has no bpy module; install it (pip install bpy, Python 3.11) or pass --blender PATH"
        )
    return [sys.executable, str(_SCRIPT)]


def _check_options(options: SynthOptions) -> None:
    if options.engine not in ENGINES:
        raise DasError(f"engine {options.engine!r} is not one of {', '.join(ENGINES)}")
    if options.background not in ("random-color", "hdri"):
        raise DasError(f"background {options.background!r} is not random-color or hdri")
    if options.background == "hdri" and options.engine == "workbench":
        raise DasError("Workbench cannot show an HDRI background; use --engine eevee or cycles with --background hdri")
    if options.variants < 1 or options.num_frames < 1:
        raise DasError("--variants and --frames must be at least 1")
    try:
        options.template.format(name="", variant=0, background="")
    except (KeyError, IndexError, ValueError) as error:
        raise DasError(
            f"prompt template {options.template!r} is invalid ({error}); it may use {{name}}, {{variant}}, {{background}}"
        ) from None


def _hdris(options: SynthOptions) -> list[Path]:
    if options.background != "hdri":
        return []
    if options.hdri_dir is None or not Path(options.hdri_dir).is_dir():
        raise DasError("--background hdri needs a folder of .hdr/.exr files: --background hdri DIR")
    found = sorted(p for p in Path(options.hdri_dir).iterdir() if p.suffix.lower() in HDRI_SUFFIXES)
    if not found:
        raise DasError(f"{options.hdri_dir}: no .hdr or .exr files")
    return found


def _key(scene: Path, variant: int) -> str:
    return f"{scene}#{variant}"


def _done_keys(out: Path) -> set[str]:
    path = out / MANIFEST_FILE
    if not path.is_file():
        return set()
    with open(path, encoding="utf-8") as file:
        return {json.loads(line)["key"] for line in file if line.strip()}


def _dataset_length(out: Path) -> int:
    """Entries already in the dataset; the four files must agree before more are appended."""
    counts = {}
    for name in (PROMPT_FILE, VIDEOS_FILE, TRACKINGS_FILE, IMAGES_FILE):
        path = out / name
        counts[name] = (
            sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.is_file() else 0
        )
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise DasError(
            f"{out}: the dataset files disagree ({listing}); fix them (see `das dataset check`) before appending"
        )
    return next(iter(counts.values()))
