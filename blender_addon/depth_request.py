"""A depth request off Blender's main thread: a thread asks the server, a timer hands the answer back.

The thread owns its own `DasClient` (one thread per socket) and touches no bpy; it first asks for
the server's info, so a server that is not there fails within the connection timeout rather than
the depth request's (which waits while the server loads its depth model). `tick`, a
`bpy.app.timers` function, calls the request's `on_depth` or `on_error` on the main thread once
the thread ends. `PENDING` is what the panel shows while it waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import bpy
import numpy as np

from das_core.errors import DasError
from das_core.wire.protocol import DepthResult

from .jobs import redraw_panels
from .network_thread import Connection

TICK_INTERVAL_S = 0.2


@dataclass
class PendingDepth:
    """One request: what it is for (`label`), when it started, and what to do with the answer."""

    label: str
    on_depth: Callable[[DepthResult], None]
    on_error: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    outcome: DepthResult | str | None = None  # written once by the thread, read after it ended
    thread: threading.Thread | None = None


PENDING: list[PendingDepth] = []


def request_depth(
    connection: Connection,
    image: np.ndarray,
    label: str,
    on_depth: Callable[[DepthResult], None],
    on_error: Callable[[str], None],
) -> PendingDepth:
    """Start asking for `image`'s depth; `on_depth` or `on_error` runs later on the main thread."""
    pending = PendingDepth(label, on_depth, on_error)

    def run() -> None:
        try:
            with connection.client() as client:
                client.info()
                pending.outcome = client.depth(image)
        except DasError as error:
            pending.outcome = str(error)
        except Exception as error:  # a failure must reach the panel, not end the thread silently
            pending.outcome = f"the depth request failed: {type(error).__name__}: {error}"

    pending.thread = threading.Thread(target=run, name=f"das depth {label}", daemon=True)
    PENDING.append(pending)
    pending.thread.start()
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TICK_INTERVAL_S)
    return pending


def tick() -> None:
    """Hand every finished request's answer to its callback. Main thread only."""
    finished = [pending for pending in PENDING if pending.thread is not None and not pending.thread.is_alive()]
    for pending in finished:
        PENDING.remove(pending)
        outcome = pending.outcome
        try:
            if isinstance(outcome, DepthResult):
                pending.on_depth(outcome)
            else:
                pending.on_error(outcome or "the depth request ended without an answer")
        except DasError as error:
            pending.on_error(str(error))
        except Exception as error:  # a raising timer would be unregistered by Blender, stranding the rest
            pending.on_error(f"building the scene failed: {type(error).__name__}: {error}")
    redraw_panels()  # the waiting time in the panel, or its end


def forget() -> None:
    """Drop every request (add-on disabled): their threads end on their own, their answers go nowhere."""
    PENDING.clear()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)


def _timer() -> float | None:
    tick()
    return TICK_INTERVAL_S if PENDING else None
