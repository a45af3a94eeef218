"""Generators the worker can run: `das` (the DaS pipeline), `wan-move` (Wan-Move), `tiny` (a tiny DaS
or Wan-Move pipeline on CPU, for tests), `preview` (warps the reference image along the tracking
video, no model at all) and `sleep` (a simulated GPU for tests and benchmarks: it sleeps each step).

A backend is built once at server start (`load_backend`) and says in `window` what its jobs carry:
the control (a tracking video or point tracks) and the size, frames and fps to prepare it at
(`info` tells clients). It then runs one window of a job at a time (`das_server.windows` runs a
job's windows): `generate(request, control)` yields result frames (uint8 [H, W, 3]) as soon as each
exists, one per frame of the request's control (a model backend holds a shorter control's last frame
to fill its window, `framing`), reports progress through `control.progress(phase, step, total)` and
stops early when `control.should_stop()` turns true.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW, ModelWindow
from das_core.wire.protocol import JobRequest

# The --offload modes each model's loader knows.
OFFLOAD_MODES = {"das": ("none", "model", "sequential"), "wan-move": ("none", "model", "group")}


class BackendUnavailable(DasError):
    """The chosen backend cannot run here (no GPU, no weights); the message names the alternative."""


class JobControl(Protocol):
    """What a running job may tell the worker, and ask it."""

    def progress(self, phase: str, step: int, total: int) -> None: ...

    def should_stop(self) -> bool: ...


class Backend(Protocol):
    """A generator of result frames; `describe()` goes into `info` and every result's metadata."""

    name: str
    window: ModelWindow  # what its jobs carry, and the size, frames and fps to prepare them at

    def describe(self) -> dict: ...

    def generate(self, request: JobRequest, control: JobControl) -> Iterator[np.ndarray]: ...


def load_backend(
    name: str,
    *,
    model: str | None,
    device: str | None,
    offload: str,
    base_model: str | None = None,
    fp8: bool = False,
) -> Backend:
    """Build the backend called `name`; heavy imports (torch) happen only for model backends.

    `model` None (or empty) means the backend's default: the published weights, or for `tiny` the
    tiny DaS model (`wan-move` chooses the tiny Wan-Move one).
    """
    if name == "preview":
        from das_server.backends.preview import PreviewBackend

        return PreviewBackend()
    if name in OFFLOAD_MODES and offload not in OFFLOAD_MODES[name]:
        raise BackendUnavailable(f"--offload {offload} is not a mode of {name}; use {', '.join(OFFLOAD_MODES[name])}")
    if name == "sleep":
        from das_server.backends.sleep import SleepBackend

        return SleepBackend()
    try:
        if name == "tiny":
            return _tiny(model)
        if name == "das":
            from das_server.backends.das import DasBackend
            from das_server.config import DEFAULT_MODEL

            return DasBackend(model=model or DEFAULT_MODEL, device=device, offload=offload)
        if name == "wan-move":
            from das_server.backends.wan_move import WanMoveBackend

            return WanMoveBackend(model=model, base_model=base_model, device=device, offload=offload, fp8=fp8)
    except ImportError as error:
        raise BackendUnavailable(
            f"the {name} backend needs the model dependencies ({error}); install them with "
            '`pip install torch && pip install -e ".[model]"`, or use --backend preview'
        ) from None
    raise BackendUnavailable(f"unknown backend {name!r}; choose das, wan-move, preview or tiny")


def backend_window(name: str, model: str | None) -> ModelWindow:
    """The window a backend will report, known before it loads (for limits such as --max-frames)."""
    if name == "wan-move" or (name == "tiny" and model == "wan-move"):
        return WAN_MOVE_WINDOW
    return DAS_WINDOW


def _tiny(model: str | None) -> Backend:
    from das_server.backends.tiny import TINY_MODELS, TinyBackend, TinyWanMoveBackend

    if model == "wan-move":
        return TinyWanMoveBackend()
    if model in (None, "", "das"):
        return TinyBackend()
    raise BackendUnavailable(f"the tiny backend has no model {model!r}; use --model {' or --model '.join(TINY_MODELS)}")
