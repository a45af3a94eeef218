"""Generators the worker can run: `das` (the DaS pipeline), `tiny` (a tiny pipeline on CPU, for
tests), `preview` (warps the reference image along the tracking video, no model at all) and
`sleep` (a simulated GPU for tests and benchmarks: it sleeps each step).

A backend is built once at server start (`load_backend`) and then runs one job at a time:
`generate(request, control)` yields result frames (uint8 [H, W, 3]) as soon as each exists,
reports progress through `control.progress(phase, step, total)` and stops early when
`control.should_stop()` turns true.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from das_core.errors import DasError
from das_core.wire.protocol import JobRequest


class BackendUnavailable(DasError):
    """The chosen backend cannot run here (no GPU, no weights); the message names the alternative."""


class JobControl(Protocol):
    """What a running job may tell the worker, and ask it."""

    def progress(self, phase: str, step: int, total: int) -> None: ...

    def should_stop(self) -> bool: ...


class Backend(Protocol):
    """A generator of result frames; `describe()` goes into `info` and every result's metadata."""

    name: str

    def describe(self) -> dict: ...

    def generate(self, request: JobRequest, control: JobControl) -> Iterator[np.ndarray]: ...


def load_backend(name: str, *, model: str, device: str | None, offload: str) -> Backend:
    """Build the backend called `name`; heavy imports (torch) happen only for das and tiny."""
    if name == "preview":
        from das_server.backends.preview import PreviewBackend

        return PreviewBackend()
    if name == "sleep":
        from das_server.backends.sleep import SleepBackend

        return SleepBackend()
    try:
        if name == "tiny":
            from das_server.backends.tiny import TinyBackend

            return TinyBackend()
        if name == "das":
            from das_server.backends.das import DasBackend

            return DasBackend(model=model, device=device, offload=offload)
    except ImportError as error:
        raise BackendUnavailable(
            f"the {name} backend needs the model dependencies ({error}); install them with "
            '`pip install torch && pip install -e ".[model]"`, or use --backend preview'
        ) from None
    raise BackendUnavailable(f"unknown backend {name!r}; choose das, preview or tiny")
