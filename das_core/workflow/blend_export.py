"""Headless export of a .blend file to das-tracks/1, in a Blender process of its own.

The add-on's `blender_addon.export.export_tracks` does the work; this module only starts Blender
and hands it one script (`export_in_blender.py`), either through the `bpy` module of this Python
(`python SCRIPT -- ARGS`) or through a Blender executable (`blender -b FILE --python
SCRIPT -- ARGS`), so both ways run the same code. A separate process keeps the caller free of bpy
(Blender's Python or a CLI without it) and gives every export a freshly opened file.
`run_in_blender` starts any such script (`image_blend` builds scenes from pictures with it).
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
from das_core.tracking.tracks import Tracks

ERROR_MARK = "DAS-EXPORT-ERROR: "
WARNING_MARK = "DAS-EXPORT-WARNING: "

# Runs inside Blender: a real file, so linters and editors read it.
_SCRIPT = Path(__file__).with_name("export_in_blender.py")


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
    blender: str | os.PathLike | None = None,
    reference_render: str | os.PathLike | None = None,
    engine: str | None = None,
) -> ExportResult:
    """Export every frame of `blend`'s active scene's range (the scene's, or `frame_start`..`frame_end`) to
    `output` (.npz) and optionally render its first frame.

    `engine` picks the reference render's engine ("WORKBENCH", "EEVEE", "CYCLES"; None: the scene's).

    Runs Blender as a subprocess: the `blender` executable when given, otherwise this Python's
    `bpy` module. Raises `DasError` naming the problem (missing file, unknown camera, no bpy, a
    Blender crash with the tail of its log).
    """
    blend = Path(blend).resolve()
    output = Path(output).resolve()
    if not blend.is_file():
        raise DasError(f"{blend}: no such .blend file")
    output.parent.mkdir(parents=True, exist_ok=True)
    reference = Path(reference_render).resolve() if reference_render else None
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "blend": str(blend),
        "output": str(output),
        "camera": camera,
        "frame_start": frame_start,
        "frame_end": frame_end,
        "reference_render": str(reference) if reference else None,
        "engine": engine,
    }
    output.unlink(missing_ok=True)
    log = run_in_blender(_SCRIPT, args, blender=blender, blend=blend, what=f"export {blend.name}", output=output)
    if reference is not None and not reference.is_file():
        raise DasError(f"Blender exported {blend.name} but wrote no reference render at {reference}")
    warnings = tuple(line[len(WARNING_MARK) :] for line in log if line.startswith(WARNING_MARK))
    return ExportResult(Tracks.load(output), output, reference, warnings)


def run_in_blender(
    script: Path,
    args: dict,
    *,
    blender: str | os.PathLike | None,
    blend: Path | None = None,
    what: str,
    output: Path,
) -> list[str]:
    """Run `script` in Blender with `args` (JSON, plus the package root); its stderr lines once `output` exists.

    A line starting with `ERROR_MARK` becomes a `DasError` prefixed with the file's name; a crash or
    a missing `output` becomes one naming `what` failed, with the tail of Blender's log.
    """
    payload = json.dumps({"package_root": str(Path(__file__).resolve().parents[2]), **args})
    command = _blender_command(script, blend, blender) + ["--", payload]
    finished = subprocess.run(command, capture_output=True, text=True, errors="replace")
    log = finished.stderr.splitlines()
    errors = [line[len(ERROR_MARK) :] for line in log if line.startswith(ERROR_MARK)]
    if errors:
        raise DasError(f"{(blend or output).name}: {errors[-1]}")
    if finished.returncode != 0 or not output.is_file():
        tail = " | ".join((finished.stderr + finished.stdout).strip().splitlines()[-5:])
        raise DasError(f"Blender failed to {what} (exit code {finished.returncode}): {tail}")
    return log


def _blender_command(script: Path, blend: Path | None, blender: str | os.PathLike | None) -> list[str]:
    """The command line that runs `script`: a Blender executable (opening `blend`), or this Python with bpy."""
    if blender is not None:
        executable = shutil.which(str(blender))
        if executable is None:
            raise DasError(f"Blender executable {str(blender)!r} not found; pass the full path to blender")
        opened = [str(blend)] if blend is not None else []
        return [executable, "-b", "--factory-startup", *opened, "--python-exit-code", "3", "--python", str(script)]
    if importlib.util.find_spec("bpy") is None:
        raise DasError(
            f"this Python ({sys.version.split()[0]}) has no bpy module; install it (pip install bpy, "
            "Python 3.11) or pass --blender PATH to use a Blender executable"
        )
    return [sys.executable, str(script)]
