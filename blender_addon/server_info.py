"""What each server runs, as its last `info` said: kept per address, asked for off the main thread.

A job's thread asks the server before it prepares the control (`JobThread`) and records the answer
here; the panel shows it (model, size, frames, fps) and the operators prepare the export and the
reference for it. `ask_in_background` asks without a job (the panel's "Ask server" button).
"""

from __future__ import annotations

import threading

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.protocol import ServerInfo

KNOWN: dict[str, ServerInfo] = {}  # server address -> its latest info
ASK_ERRORS: dict[str, str] = {}  # server address -> why the last ask failed


def remember(address: str, info: ServerInfo) -> None:
    KNOWN[address] = info
    ASK_ERRORS.pop(address, None)


def window_for(address: str) -> ModelWindow:
    """The window the server at `address` last named; DaS's until it has been asked."""
    info = KNOWN.get(address)
    return info.window if info is not None else DAS_WINDOW


def describe(info: ServerInfo) -> str:
    """One line for the panel: backend and model, then the window."""
    window = info.window
    return (
        f"{info.backend}: {info.model or '?'}; {window.width}x{window.height}, {window.frames} frames at "
        f"{window.fps:g} fps, follows {window.control}"
    )


def ask_in_background(connection) -> threading.Thread:
    """Ask the server for its info from a short thread with its own client (`network_thread.Connection`)."""

    def run() -> None:
        try:
            with connection.client() as client:
                remember(connection.address, client.info())
        except DasError as error:
            ASK_ERRORS[connection.address] = str(error)

    thread = threading.Thread(target=run, name="das-server-info", daemon=True)
    thread.start()
    return thread
