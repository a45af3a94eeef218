"""Headless export of a .blend file to das-tracks/1, in a Blender process of its own.

The add-on's `blender_addon.export.export_tracks` does the work; this module only starts Blender
and hands it one script (`_EXPORT_SCRIPT`), either through the `bpy` module of this Python
(`python -c SCRIPT -- ARGS`) or through a Blender executable (`blender -b FILE --python-expr
SCRIPT -- ARGS`), so both ways run the same code. A separate process keeps the caller free of bpy
(Blender's Python or a CLI without it) and gives every export a freshly opened file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from das_core.errors import DasError
from das_core.tracks import Tracks

_ERROR_MARK = "DAS-EXPORT-ERROR: "
_WARNING_MARK = "DAS-EXPORT-WARNING: "

# Runs inside Blender. Arguments arrive as one JSON string after "--". The package root is
# appended (not prepended) to sys.path so Blender's own numpy stays first.
_EXPORT_SCRIPT = f"""
import json, os, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
sys.path.append(args["package_root"])
import bpy
from das_core.errors import DasError


def run():
    if os.path.realpath(bpy.data.filepath or "") != os.path.realpath(args["blend"]):
        bpy.ops.wm.open_mainfile(filepath=args["blend"])
    from blender_addon.export import export_tracks

    scene = bpy.context.scene
    camera = None
    if args["camera"]:
        camera = bpy.data.objects.get(args["camera"])
        if camera is None:
            cameras = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA") or ["none"]
            raise DasError(
                f"no object named {{args['camera']!r}}; cameras in this file: {{', '.join(cameras)}}"
            )
    tracks = export_tracks(
        scene, camera=camera, frame_start=args["frame_start"], frame_end=args["frame_end"], samples=args["samples"]
    )
    tracks.save(args["output"])
    for warning in tracks.extra.get("warnings", []):
        print({_WARNING_MARK!r} + warning, file=sys.stderr)
    if args["reference_render"]:
        from blender_addon.reference_render import render_reference

        render_reference(
            scene, args["reference_render"], frame=int(tracks.frame_numbers[0]), engine=args["engine"], camera=camera
        )


try:
    run()
except DasError as error:
    print({_ERROR_MARK!r} + str(error).replace(chr(10), " "), file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)
"""


@dataclass(frozen=True)
class ExportResult:
    """What an export produced: the tracks, where they were written, and any warnings from Blender."""

    tracks: Tracks
    tracks_path: Path
    reference_path: Path | None
    warnings: tuple[str, ...]


def parse_frame_range(text: str) -> tuple[int | None, int | None]:
    """`"START:END"` (inclusive; either side may be empty for the scene's own) -> (start, end)."""
    start, sep, end = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start) if start.strip() else None
        last = int(end) if end.strip() else None
    except ValueError:
        raise DasError(
            f"frame range {text!r} is not START:END (for example 1:49, or 10: to use the scene's end)"
        ) from None
    if first is not None and last is not None and last < first:
        raise DasError(f"frame range {text!r} ends before it starts; use START:END with END >= START")
    return first, last


def export_blend(
    blend: str | os.PathLike,
    output: str | os.PathLike,
    *,
    camera: str | None = None,
    frame_start: int | None = None,
    frame_end: int | None = None,
    samples: int = 49,
    blender: str | os.PathLike | None = None,
    reference_render: str | os.PathLike | None = None,
    engine: str | None = None,
) -> ExportResult:
    """Export `blend`'s active scene to `output` (.npz) and optionally render its first sampled frame.

    `engine` picks the reference render's engine ("WORKBENCH", "EEVEE", "CYCLES"; None: the scene's).

    Runs Blender as a subprocess: the `blender` executable when given, otherwise this Python's
    `bpy` module. Raises `DasError` naming the problem (missing file, unknown camera, no bpy, a
    Blender crash with the tail of its log).
    """
    blend = Path(blend).resolve()
    output = Path(output).resolve()
    if not blend.is_file():
        raise DasError(f"{blend}: no such .blend file")
    if samples < 1:
        raise DasError(f"samples must be 1 or more, got {samples}")
    output.parent.mkdir(parents=True, exist_ok=True)
    reference = Path(reference_render).resolve() if reference_render else None
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
    args = json.dumps(
        {
            "package_root": str(Path(__file__).resolve().parent.parent),
            "blend": str(blend),
            "output": str(output),
            "camera": camera,
            "frame_start": frame_start,
            "frame_end": frame_end,
            "samples": int(samples),
            "reference_render": str(reference) if reference else None,
            "engine": engine,
        }
    )
    command = _blender_command(blend, blender) + ["--", args]
    output.unlink(missing_ok=True)
    finished = subprocess.run(command, capture_output=True, text=True, errors="replace")
    log = finished.stderr.splitlines()
    errors = [line[len(_ERROR_MARK) :] for line in log if line.startswith(_ERROR_MARK)]
    if errors:
        raise DasError(f"{blend.name}: {errors[-1]}")
    if finished.returncode != 0 or not output.is_file():
        tail = " | ".join((finished.stderr + finished.stdout).strip().splitlines()[-5:])
        raise DasError(f"Blender failed to export {blend.name} (exit code {finished.returncode}): {tail}")
    if reference is not None and not reference.is_file():
        raise DasError(f"Blender exported {blend.name} but wrote no reference render at {reference}")
    warnings = tuple(line[len(_WARNING_MARK) :] for line in log if line.startswith(_WARNING_MARK))
    return ExportResult(Tracks.load(output), output, reference, warnings)


def _blender_command(blend: Path, blender: str | os.PathLike | None) -> list[str]:
    """The command line that runs `_EXPORT_SCRIPT`: a Blender executable, or this Python with bpy."""
    if blender is not None:
        executable = shutil.which(str(blender))
        if executable is None:
            raise DasError(f"Blender executable {str(blender)!r} not found; pass the full path to blender")
        return [
            executable, "-b", "--factory-startup", str(blend), "--python-exit-code", "3",
            "--python-expr", _EXPORT_SCRIPT,
        ]  # fmt: skip
    if importlib.util.find_spec("bpy") is None:
        raise DasError(
            f"this Python ({sys.version.split()[0]}) has no bpy module; install it (pip install bpy, "
            "Python 3.11) or pass --blender PATH to use a Blender executable"
        )
    return [sys.executable, "-c", _EXPORT_SCRIPT]
