"""Loaders for the pool's workers that only tests need; Ray workers import them from this checkout."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from das_core.wire.protocol import JobRequest, frame_digest, result_checksum
from das_server.backends.sleep import SleepBackend

FRAME_S = 0.05


class SlowFrames(SleepBackend):
    """The sleep backend with its frames `FRAME_S` apart, so a worker can die between two of them."""

    def generate(self, request, control):
        tracking = np.asarray(request.tracking)
        for index, frame in enumerate(tracking):
            if control.should_stop():
                return
            time.sleep(FRAME_S)
            yield frame
            control.progress("decode", index + 1, len(tracking))


class DieOnce:
    """Loads the sleep backend, except in the first worker to try: that one is SIGKILLed while loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __call__(self) -> SleepBackend:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return SleepBackend()
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the process is gone")


def sleep_checksum(request: JobRequest) -> str:
    """The checksum of what the sleep backend returns for `request`: its tracking video."""
    return result_checksum([frame_digest(np.ascontiguousarray(frame)) for frame in request.tracking])
