"""A whole shot from a tracks file, for `das generate`, `fetch`, `infer`, `interpolate` and `das batch`.

The tracks hold every timeline frame of the shot; `das_core.tracking.shot` plans the model's frames
(the keys) at its frame rate, in windows of its length. `check_tracks` refuses tracks that cannot make
the result asked for, before any model work; a `WholeShot` is the plan at one model's window: the
control to send, the check of the frames that came back, and the MP4: every timeline frame at the
tracks' frame rate (`every`: the keys as generated, the frames between them in-betweened from the
exact motion) or the model's frames at its frame rate (`model`). All of these commands put a shot
back together this one way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from das_core.errors import DasError, plural
from das_core.tracking.shot import (
    FRAMES_EVERY,
    FRAMES_MODEL,
    FRAMES_SETTINGS,
    ShotControl,
    ShotPlan,
    plan_shot,
    scene_frames,
)
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import ModelWindow

__all__ = ["FRAMES_EVERY", "FRAMES_MODEL", "FRAMES_SETTINGS", "ShotVideo", "WholeShot", "check_tracks"]


def check_tracks(tracks: Tracks, frames: str, name: str, model_option: str | None = "--frames model") -> None:
    """Refuse tracks that cannot make a `frames` result, naming the fix; `name` is how messages call the file,
    `model_option` how the caller asks for the model's frames (None: it cannot).

    The plan reads the tracks' index as timeline time (frame i is i / fps seconds in), so the tracks must
    hold every frame of their range: a sampled export (the old 49-frame default) would be planned as a
    shorter, faster shot. `every` in-betweens from surfaces, so it needs faces.
    """
    if frames not in FRAMES_SETTINGS:
        raise DasError(f"frames must be {' or '.join(FRAMES_SETTINGS)}, got {frames!r}")
    numbers = tracks.frame_numbers
    assert numbers is not None  # Tracks fills it
    if len(numbers) > 1 and (np.diff(numbers) != 1).any():
        raise DasError(
            f"{name} holds {plural(tracks.num_frames, 'frame')} sampled from scene frames {numbers[0]}..{numbers[-1]}, "
            "not every frame: shots are planned from every timeline frame; export every frame of the range "
            "(`das export` does by default) and use that file"
        )
    if frames == FRAMES_EVERY and (tracks.faces is None or not len(tracks.faces)):
        model = f"use {model_option} for the model's frames only, or " if model_option else ""
        raise DasError(
            f"{name} has points only, no faces: making the frames between the model's needs surfaces; "
            f"{model}export the scene's meshes from Blender"
        )


@dataclass(frozen=True)
class ShotVideo:
    """What `WholeShot.write` wrote: `frames` frames at `fps`, `made` of them in-betweened; `seconds` to make
    and encode them."""

    path: Path
    frames: int
    fps: float
    made: int
    seconds: float

    def summary(self) -> str:
        """'wrote PATH (73 frames at 24 fps: 25 model frames, 48 in-betweened, all encoded in 9.1 s)' or '(25 frames at 8 fps)'."""
        if not self.made:
            return f"wrote {self.path} ({plural(self.frames, 'frame')} at {self.fps:g} fps)"
        return (
            f"wrote {self.path} ({plural(self.frames, 'frame')} at {self.fps:g} fps: "
            f"{plural(self.frames - self.made, 'model frame')}, {self.made} in-betweened, all encoded in {self.seconds:.1f} s)"
        )


@dataclass(frozen=True)
class WholeShot:
    """A shot from tracks of every timeline frame (`name` in messages), planned at a model's `window`;
    `frames` is what its video holds (`every` or `model`)."""

    tracks: Tracks
    name: str
    window: ModelWindow
    frames: str
    plan: ShotPlan

    @classmethod
    def planned(
        cls, tracks: Tracks, name: str, window: ModelWindow, frames: str, model_option: str | None = "--frames model"
    ) -> WholeShot:
        """Check the tracks (`check_tracks`) and plan the shot at `window`."""
        check_tracks(tracks, frames, name, model_option)
        return cls(tracks, name, window, frames, plan_shot(tracks.num_frames, tracks.fps, window))

    def describe(self) -> str:
        """'73 frames at 24 fps, 25 model frames at 8 fps' (+ ' in 2 windows')."""
        windows = len(self.plan.windows)
        return (
            f"{plural(self.tracks.num_frames, 'frame')} at {self.tracks.fps:g} fps, "
            f"{plural(len(self.plan.keys), 'model frame')} at {self.window.fps:g} fps"
            + (f" in {windows} windows" if windows > 1 else "")
        )

    def control(self, mode: str | None = None, *, progress: bool = False) -> ShotControl:
        """Each window's control (`ShotControl.prepare`); `mode` is the tracking video's (mesh or points)."""
        return ShotControl.prepare(self.tracks, self.plan, self.window, mode, progress=progress)

    def check_model_frames(self, count: int, fix: str) -> None:
        """Refuse `count` generated frames when the plan has another number of keys; `fix` says what to do."""
        if count != len(self.plan.keys):
            raise DasError(
                f"{plural(count, 'frame')} came back for a shot of {plural(len(self.plan.keys), 'model frame')} "
                f"(planned from {self.name} at {self.window.fps:g} fps); {fix}"
            )

    def write(
        self, path: str | os.PathLike, generated: np.ndarray, *, fps: float | None = None, progress: bool = False
    ) -> ShotVideo:
        """Write the shot's MP4 from the `generated` frames, one per key (checked).

        `every`: every timeline frame at the tracks' frame rate, in-betweened with a progress bar;
        `model`: the generated frames at the model's. `fps` overrides the MP4's frame rate.
        """
        from tqdm import tqdm

        from das_core.tracking.video import write_mp4

        generated = np.asarray(generated)
        self.check_model_frames(len(generated), "make them from these tracks")
        if self.frames == FRAMES_MODEL:
            rate = fps or self.window.fps
            return ShotVideo(write_mp4(path, generated, fps=rate, progress=progress), len(generated), rate, 0, 0.0)
        start = time.perf_counter()
        rate = fps or self.tracks.fps
        # Each timeline frame goes to ffmpeg as it is made: the in-betweener and the encoder overlap,
        # and the whole video (a quarter of a gigabyte for ten seconds) is never held in memory.
        timeline = scene_frames(self.tracks, self.plan, generated, self.frames)
        bar = tqdm(timeline, total=self.plan.num_frames, desc="in-betweening", unit="frame", disable=not progress)
        written = write_mp4(path, bar, fps=rate)
        seconds = time.perf_counter() - start
        return ShotVideo(written, self.plan.num_frames, rate, self.plan.num_frames - len(generated), seconds)
