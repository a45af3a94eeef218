"""The `sleep` backend: a simulated GPU for tests and benchmarks of the server, not a model.

Each denoising step sleeps `STEP_S` (a GPU-bound worker leaves the CPU free, and so does this),
so a job takes `steps * STEP_S` seconds (50 steps: 2 s) and many workers scale on a 2-core machine.
Its frames are the request's tracking video, unchanged, so every result is known in advance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from das_core.tracking.window import DAS_WINDOW
from das_core.wire.protocol import JobRequest

STEP_S = 0.04


class SleepBackend:
    """Sleeps through the steps, then returns the tracking video as the result."""

    name = "sleep"
    window = DAS_WINDOW  # it takes jobs as the DaS model does

    def describe(self) -> dict:
        return {
            "backend": "sleep",
            "model": f"none (simulated GPU: {STEP_S:g} s per step, the tracking video as result)",
            "device": "cpu",
            "preview": True,
        }

    def generate(self, request: JobRequest, control) -> Iterator[np.ndarray]:
        steps = int(request.steps)
        control.progress("denoise", 0, steps)
        for step in range(steps):
            if control.should_stop():
                return
            time.sleep(STEP_S)
            control.progress("denoise", step + 1, steps)
        if control.should_stop():
            return
        yield from np.asarray(request.tracking)
