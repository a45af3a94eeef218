"""The batch spec: a TOML file listing shots to render, read into frozen dataclasses.

```toml
server = "tcp://render-box:5555"      # optional: where `das batch` submits (else --server/--backend)
blender = "/opt/blender/blender"      # optional: export .blend shots with this Blender, not bpy

[defaults]                            # optional: any shot key below, applied to every shot
frames = "model"

[[shot]]
name = "walk"                         # letters, digits, '-', '_': the shot's folder and job id prefix
blend = "scenes/walk_cycle.blend"     # a .blend to export (every frame) ...
camera = "Camera"                     # ... with this camera (default: the scene camera)
range = "1:49"                        # ... over these frames, as `das export --frames` (default: the scene's)
prompt = "A wooden mannequin walks across a grey studio floor."

[[shot]]
name = "orbit"
tracks = "camera_orbit/tracks.npz"    # or an exported tracks file (every frame of the shot) ...
image = "camera_orbit/reference.png"  # ... which needs a reference image (optional for .blend shots:
                                      #     without one, the range's first frame is rendered)
prompt = "..."
frames = "every"                      # result.mp4: every frame of the shot at its frame rate, the frames
                                      #   between the model's in-betweened ("every", default), or the
                                      #   model's frames at its rate ("model": DaS 8, Wan-Move 16 fps)
negative_prompt = "..."               # default: the server's (the DaS reference negative prompt)
seed = 7                              # default 42
steps = 50                            # default: the server model's (DaS 50, Wan-Move 40)
guidance = 6.0                        # default: the server model's (DaS 6.0, Wan-Move 5.0)
fps = 24.0                            # frame rate of result.mp4; default: the shot's (every) or the model's (model)
mode = "mesh"                         # tracking video: "mesh" or "points"; default mesh when the
                                      #   tracks have faces, else points
```
Relative paths are relative to the spec file. A key that is misspelt or has the wrong type is
an error for the whole spec (before any work); a missing input file fails only its shot.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from das_core.errors import DasError, plural
from das_core.tracking.control import sampling_defaults
from das_core.tracking.shot import FRAMES_EVERY, FRAMES_SETTINGS
from das_core.tracking.window import ModelWindow
from das_core.workflow.blend_export import parse_frame_range

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_TOP_KEYS = {"server", "blender", "defaults", "shot"}
_TEXT, _WHOLE, _NUMBER = ((str,), "a string"), ((int,), "a whole number"), ((int, float), "a number")
_SHOT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": _TEXT,
    "prompt": _TEXT,
    "blend": _TEXT,
    "tracks": _TEXT,
    "camera": _TEXT,
    "range": _TEXT,
    "frames": _TEXT,
    "image": _TEXT,
    "negative_prompt": _TEXT,
    "seed": _WHOLE,
    "steps": _WHOLE,
    "guidance": _NUMBER,
    "fps": _NUMBER,
    "mode": _TEXT,
}
_MODES = ("mesh", "points")
# Keys of earlier versions, with what replaced them.
_GONE = {
    "samples": "blend shots export every frame of their range, and the model's frames are planned at its "
    'frame rate; remove samples (frames = "model" writes the model\'s frames only)',
}


class BatchSpecError(DasError):
    """A batch spec that cannot be used; the message names the file, the shot and the key."""


@dataclass(frozen=True)
class Shot:
    """One shot: where its motion comes from, and how to generate its video."""

    name: str
    prompt: str
    blend: Path | None = None
    tracks: Path | None = None
    camera: str | None = None
    frame_start: int | None = None
    frame_end: int | None = None
    frames: str = FRAMES_EVERY  # what result.mp4 holds: every timeline frame or the model's frames
    image: Path | None = None
    negative_prompt: str | None = None
    seed: int = 42
    steps: int | None = None  # None here: the default of the server's model (`for_window`)
    guidance: float | None = None
    fps: float | None = None  # None: the shot's frame rate (frames every) or the model's (frames model)
    mode: str | None = None

    def for_window(self, window: ModelWindow) -> Shot:
        """This shot with the sampling the spec left unset taken from the model of `window` (as `das generate`
        does)."""
        steps, guidance = sampling_defaults(window)
        return replace(
            self,
            steps=steps if self.steps is None else self.steps,
            guidance=guidance if self.guidance is None else self.guidance,
        )

    def parameters(self) -> dict:
        """Everything that decides the result, as JSON-ready values (the manifest compares these)."""
        return {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class BatchSpec:
    """A parsed spec: its shots in file order plus the optional server address and Blender path."""

    path: Path
    shots: tuple[Shot, ...]
    server: str | None = None
    blender: str | None = None


def load_spec(path: str | Path) -> BatchSpec:
    """Read and check a batch spec TOML; raises `BatchSpecError` naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise BatchSpecError(f"{path}: no such batch spec file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BatchSpecError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BatchSpecError(
            f"{path}: {plural(len(unknown), 'unknown top-level key')}: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    for key in ("server", "blender"):
        if key in data and not isinstance(data[key], str):
            raise BatchSpecError(f"{path}: {key} must be a string")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BatchSpecError(f"{path}: [defaults] must be a table")
    _check_keys(path, "[defaults]", defaults)
    if "name" in defaults:
        raise BatchSpecError(f"{path}: [defaults] cannot set name; every shot needs its own")
    entries = data.get("shot", [])
    if not isinstance(entries, list) or not entries:
        raise BatchSpecError(f"{path}: no shots; add at least one [[shot]] table with a name and a prompt")
    base = path.resolve().parent
    shots: list[Shot] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise BatchSpecError(f"{path}: shot {number} must be a table ([[shot]])")
        shots.append(_parse_shot(path, base, number, {**defaults, **entry}))
    names = [shot.name for shot in shots]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BatchSpecError(
            f"{path}: {plural(len(duplicates), 'shot name')} used more than once: {', '.join(duplicates)}; "
            "names must be unique"
        )
    return BatchSpec(path=path.resolve(), shots=tuple(shots), server=data.get("server"), blender=data.get("blender"))


def _check_keys(path: Path, where: str, table: dict) -> None:
    for key, value in table.items():
        if key in _GONE:
            raise BatchSpecError(f"{path}: {where} has {key}, which is gone: {_GONE[key]}")
        if key not in _SHOT_KEYS:
            raise BatchSpecError(f"{path}: {where} has unknown key {key!r}; allowed: {', '.join(_SHOT_KEYS)}")
        kinds, wanted = _SHOT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kinds):  # TOML true is not a number here
            raise BatchSpecError(f"{path}: {where} {key} must be {wanted}, got {value!r}")


def _parse_shot(path: Path, base: Path, number: int, entry: dict) -> Shot:
    label = f"shot {number}" + (f" ({entry['name']!r})" if isinstance(entry.get("name"), str) else "")
    _check_keys(path, label, entry)

    def fail(message: str) -> BatchSpecError:
        return BatchSpecError(f"{path}: {label}: {message}")

    name = entry.get("name")
    if name is None or not _NAME.match(name):
        raise fail("needs a name of 1-40 letters, digits, '-' or '_' (it names the shot's output folder)")
    if not entry.get("prompt", "").strip():
        raise fail("needs a prompt describing the video")
    if ("blend" in entry) == ("tracks" in entry):
        raise fail("give exactly one of blend (a .blend file to export) or tracks (an exported .npz)")
    if "tracks" in entry:
        for key in ("camera", "range"):
            if key in entry:
                raise fail(f"{key} only applies to blend shots; a tracks file is already exported")
        if "image" not in entry:
            raise fail("a tracks shot needs image (the reference first frame); only blend shots can render one")
    frames = entry.get("frames", FRAMES_EVERY)
    if frames not in FRAMES_SETTINGS:
        moved = f'; a blend shot\'s frame range is range = "{frames}" now' if ":" in frames else ""
        raise fail(
            f"frames must be {' or '.join(map(repr, FRAMES_SETTINGS))} (what result.mp4 holds), got {frames!r}{moved}"
        )
    frame_start, frame_end = None, None
    if "range" in entry:
        try:
            frame_start, frame_end = parse_frame_range(entry["range"])
        except DasError as error:
            raise fail(str(error)) from None
    if entry.get("mode", "mesh") not in _MODES:
        raise fail(f"mode must be one of {', '.join(_MODES)}, got {entry['mode']!r}")
    for key, low in (("steps", 1), ("seed", 0)):
        if key in entry and entry[key] < low:
            raise fail(f"{key} must be {low} or more, got {entry[key]}")
    if entry.get("guidance", 0) < 0:
        raise fail(f"guidance must be 0 or more, got {entry['guidance']}")
    if entry.get("fps", 1) <= 0:
        raise fail(f"fps must be a positive number, got {entry['fps']}")

    def resolve(key: str) -> Path | None:
        return (base / entry[key]).resolve() if key in entry else None

    return Shot(
        name=name,
        prompt=entry["prompt"],
        blend=resolve("blend"),
        tracks=resolve("tracks"),
        camera=entry.get("camera"),
        frame_start=frame_start,
        frame_end=frame_end,
        frames=frames,
        image=resolve("image"),
        negative_prompt=entry.get("negative_prompt"),
        seed=entry.get("seed", 42),
        steps=entry.get("steps"),
        guidance=float(entry["guidance"]) if "guidance" in entry else None,
        fps=float(entry["fps"]) if "fps" in entry else None,
        mode=entry.get("mode"),
    )
