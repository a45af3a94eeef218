"""A job's windows run in order as one job: one stream of frames, one progress bar, its seams measured.

A shot longer than one model window arrives as consecutive windows that share a frame
(`JobRequest.windows`). Window 0 starts from the job's reference image; window k + 1 from window k's
last generated frame, the shared scene frame. That frame was already sent, so each later window's
first frame is not sent again: a job of K windows yields sum(windows) - (K - 1) frames. A cancel
stops the window that runs and starts no other. Both the worker thread and the pool's actors run
jobs through `WindowedJob`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from das_core.wire.protocol import JobRequest
from das_server.backends import Backend, JobControl


class WindowedJob:
    """Runs `request` on `backend`; `frames()` yields the job's frames, `metadata()` then describes its windows."""

    def __init__(self, backend: Backend, request: JobRequest, control: JobControl) -> None:
        self.backend = backend
        self.request = request
        self.control = control
        self._colours: list[np.ndarray] = []  # mean RGB of each frame sent
        self._seams: list[int] = []  # the index of each later window's first frame sent

    def frames(self) -> Iterator[np.ndarray]:
        """The job's frames (uint8 [H, W, 3]) as each exists; nothing after a cancel or a window that made none."""
        request, count = self.request, self.request.window_count
        bar = _OneBar(self.control, count)
        reference = np.asarray(request.image)
        for index in range(count):
            if index and self.control.should_stop():
                return
            # One window: the request as sent (its point tracks untouched), exactly as before windows existed.
            window = request if count == 1 else request.window(index, reference)
            last = None
            for position, frame in enumerate(self.backend.generate(window, bar)):
                last = np.ascontiguousarray(frame, dtype=np.uint8)
                if index and not position:
                    continue  # the shared frame: sent as the previous window's last
                if index and position == 1:
                    self._seams.append(len(self._colours))
                self._colours.append(last.reshape(-1, 3).mean(axis=0))
                yield last
            if last is None:
                return
            reference = last
            bar.next_window()

    def metadata(self) -> dict:
        """For a job of several windows, what its result metadata adds (see PROTOCOL.md, Windows):

        `windows`: the control frames of each window; `seams`: for each later window, `frame`, the index of
        its first frame sent, and `colour_jump`, the L2 distance (0-255 RGB) between the mean colours of
        that frame and the one before it; `colour_jump_median`: the median of that distance over the
        consecutive frames inside the windows, to compare the seams with.
        """
        if self.request.window_count == 1:
            return {}
        jumps = np.linalg.norm(np.diff(np.asarray(self._colours).reshape(-1, 3), axis=0), axis=1)
        seams = [{"frame": frame, "colour_jump": round(float(jumps[frame - 1]), 3)} for frame in self._seams]
        inside = np.delete(jumps, [frame - 1 for frame in self._seams])
        return {
            "windows": list(self.request.window_lengths),
            "seams": seams,
            "colour_jump_median": round(float(np.median(inside)), 3) if len(inside) else None,
        }


class _OneBar:
    """The job's control as each window's backend sees it: each phase's steps continue from the earlier
    windows', out of a total that counts the windows still to run as this one, so clients see one bar."""

    def __init__(self, control: JobControl, count: int) -> None:
        self.control = control
        self.count = count
        self.index = 0
        self.done: dict[str, int] = {}  # per phase: the totals of the windows that ran
        self.totals: dict[str, int] = {}  # per phase: this window's total

    def progress(self, phase: str, step: int, total: int) -> None:
        self.totals[phase] = total
        offset = self.done.get(phase, 0)
        self.control.progress(phase, offset + step, offset + total * (self.count - self.index))

    def should_stop(self) -> bool:
        return self.control.should_stop()

    def next_window(self) -> None:
        for phase, total in self.totals.items():
            self.done[phase] = self.done.get(phase, 0) + total
        self.totals = {}
        self.index += 1
