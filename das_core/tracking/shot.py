"""A whole shot at the scene's frame rate: which timeline frames the model makes, in which windows, and back.

The model runs at its own frame rate (`ModelWindow.fps`: DaS 8, Wan-Move 16), so a shot exported
at every timeline frame is sampled at that rate in scene time (`plan_shot`): at 24 fps and 8 fps
the model makes timeline frames 0, 3, 6, ... (the keys). A shot with more keys than one window
holds is split into consecutive windows that share one key: window k + 1 starts on window k's last
key, whose generated frame becomes its reference image. `ShotControl.prepare` makes each window's control
from the tracks over its own keys, encoded from its own first frame as the model expects, and
joins them into one job (`JobRequest.windows`). `scene_frames` turns the generated keys back into
the shot: every timeline frame (`every`: the ones between keys made by the in-betweener from the
exact motion) or each key held until the next (`model`).

Numpy only (it runs inside Blender, in the CLI and on the server).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from das_core.errors import DasError
from das_core.tracking.control import Control, prepare_control
from das_core.tracking.inbetween import Inbetweener
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import ModelWindow

__all__ = ["FRAMES_EVERY", "FRAMES_MODEL", "FRAMES_SETTINGS", "ShotControl", "ShotPlan", "plan_shot", "scene_frames"]

# What a shot's result holds: every timeline frame (in-betweens from the exact motion), or the model's
# frames only, each held on the timeline until the next.
FRAMES_EVERY = "every"
FRAMES_MODEL = "model"
FRAMES_SETTINGS = (FRAMES_EVERY, FRAMES_MODEL)


class ShotError(DasError):
    """A shot that cannot be planned or put back together; the message names the problem."""


@dataclass(frozen=True)
class ShotPlan:
    """The model frames of a shot of `num_frames` timeline frames: `keys` are their timeline indices
    (increasing), `windows` each window's first and last index into `keys` (consecutive windows share
    one key)."""

    num_frames: int
    keys: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]

    @property
    def window_lengths(self) -> tuple[int, ...]:
        """Model frames per window (a shared key counts in both windows)."""
        return tuple(last - first + 1 for first, last in self.windows)

    def window_keys(self, window: int) -> tuple[int, ...]:
        """The timeline indices window `window` makes."""
        first, last = self.windows[window]
        return self.keys[first : last + 1]


def plan_shot(num_frames: int, scene_fps: float, window: ModelWindow) -> ShotPlan:
    """Sample a shot of `num_frames` timeline frames at `scene_fps` at `window.fps` in scene time, and split
    the keys into windows of at most `window.frames`.

    Key k is the timeline frame nearest k * scene_fps / window.fps (at most half a frame off the model's
    even spacing); a scene slower than the model gives every timeline frame. Timeline frames after the
    last key are made from it (`scene_frames`).
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise ShotError(f"a shot needs at least one timeline frame, got {num_frames!r}")
    if not np.isfinite(scene_fps) or scene_fps <= 0:
        raise ShotError(f"the scene's frame rate must be a positive number, got {scene_fps!r}")
    if window.frames < 2:
        raise ShotError(f"a model window of {window.frames} frame cannot share a frame with the next")
    step = max(1.0, float(scene_fps) / window.fps)
    count = int(np.floor((num_frames - 1) / step + 1e-9)) + 1
    keys = tuple(int(key) for key in np.floor(np.arange(count) * step + 0.5))
    windows, first = [], 0
    while True:
        last = min(first + window.frames - 1, len(keys) - 1)
        windows.append((first, last))
        if last == len(keys) - 1:
            break
        first = last
    return ShotPlan(int(num_frames), keys, tuple(windows))


@dataclass(frozen=True)
class ShotControl:
    """One control per window of `plan` (each encoded from its own first frame), sent as one job."""

    plan: ShotPlan
    windows: tuple[Control, ...]

    @classmethod
    def prepare(
        cls, tracks: Tracks, plan: ShotPlan, window: ModelWindow, mode: str | None = None, *, progress: bool = False
    ) -> ShotControl:
        """Each window's control (`prepare_control`) from `tracks` (every timeline frame of the shot) at its keys."""
        if tracks.num_frames != plan.num_frames:
            raise ShotError(
                f"the tracks have {tracks.num_frames} frames but the shot was planned for {plan.num_frames}; "
                "plan it from these tracks"
            )
        controls = []
        for index in range(len(plan.windows)):
            keys = plan.window_keys(index)
            controls.append(
                prepare_control(tracks.take(keys), replace(window, frames=len(keys)), mode, progress=progress)
            )
        return cls(plan, tuple(controls))

    def job_fields(self) -> dict:
        """The `JobRequest` fields: the windows' controls one after another, and `windows` (their lengths)
        when there is more than one. Point tracks are padded to the most points of any window with points
        invisible throughout the windows they do not belong to (a server ignores those there)."""
        lengths = self.plan.window_lengths
        fields: dict = {"windows": lengths if len(lengths) > 1 else None}
        points = [control.points for control in self.windows if control.points is not None]
        if not points:
            return {**fields, "tracking": np.concatenate([control.preview() for control in self.windows])}
        most = max(item.num_points for item in points)
        xy = np.zeros((sum(lengths), most, 2), dtype=np.float32)
        visible = np.zeros((sum(lengths), most), dtype=bool)
        start = 0
        for item in points:
            xy[start : start + item.num_frames, : item.num_points] = item.xy
            visible[start : start + item.num_frames, : item.num_points] = item.visible
            start += item.num_frames
        return {**fields, "point_tracks": xy, "visibility": visible}

    def preview(self, background: np.ndarray | None = None) -> np.ndarray:
        """One frame per key, uint8 [K, H, W, 3]: the tracking video or the point tracks drawn on `background`,
        each window's own (a shared key shows the earlier window's, which made it)."""
        parts = [control.preview(background) for control in self.windows]
        return np.concatenate([parts[0], *(part[1:] for part in parts[1:])])


def scene_frames(
    tracks: Tracks, plan: ShotPlan, generated: np.ndarray | list[np.ndarray], frames: str = FRAMES_EVERY
) -> Iterator[np.ndarray]:
    """The shot's timeline frames, uint8 [H, W, 3] one at a time, from the `generated` frames (one per key).

    `every`: each timeline frame; the keys as generated, the others made by the in-betweener from the
    exact motion in `tracks` (every timeline frame of the shot). `model`: also one per timeline frame,
    each showing the nearest key at or before it.
    """
    if frames not in FRAMES_SETTINGS:
        raise ShotError(f"frames must be {' or '.join(FRAMES_SETTINGS)}, got {frames!r}")
    if len(generated) != len(plan.keys):
        raise ShotError(
            f"the shot has {len(plan.keys)} model frames but {len(generated)} were generated; "
            "fetch the job's result again"
        )
    if frames == FRAMES_MODEL:
        held = np.searchsorted(np.asarray(plan.keys), np.arange(plan.num_frames), side="right") - 1
        for key in held:
            yield np.asarray(generated[int(key)])
        return
    inbetweener = Inbetweener(tracks, {key: np.asarray(frame) for key, frame in zip(plan.keys, generated)})
    for t in range(plan.num_frames):
        yield inbetweener.frame(t)
