"""What each server runs, as its last `info` said: kept per address, asked for off the main thread.

A job's thread asks the server before it plans the shot and prepares the control (`JobThread`) and
records the answer here; the panel shows it (model, size, frames, fps, and the model frames and windows
the frame range makes) and Generate renders the reference at its size. `ask_in_background` asks without a job (the panel's "Ask server" button);
`window_asking` asks on the main thread, briefly, when Generate meets a server it has not heard from.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.protocol import ServerInfo

KNOWN: dict[str, ServerInfo] = {}  # server address -> its latest info
ASK_ERRORS: dict[str, str] = {}  # server address -> why the last ask failed
# How long Generate holds Blender to learn the window of a server it has not heard from.
FIRST_ASK_TIMEOUT_S = 2.0


def remember(address: str, info: ServerInfo) -> None:
    KNOWN[address] = info
    ASK_ERRORS.pop(address, None)


def window_for(address: str) -> ModelWindow:
    """The window the server at `address` last named; DaS's until it has been asked."""
    info = KNOWN.get(address)
    return info.window if info is not None else DAS_WINDOW


def window_asking(connection) -> ModelWindow:
    """The window of the server at `connection.address`, asked for now (at most `FIRST_ASK_TIMEOUT_S`) if unknown.

    The reference is rendered at this window's size on the main thread (it needs bpy), so it must be
    known before the job's thread can ask. A server that does not answer in time gets DaS's window: the
    job's thread then asks with the full timeout and reports the same error a job always has.
    """
    if connection.address not in KNOWN:
        try:
            with replace(connection, timeout=min(connection.timeout, FIRST_ASK_TIMEOUT_S)).client() as client:
                remember(connection.address, client.info())
        except DasError as error:
            ASK_ERRORS[connection.address] = str(error)
    return window_for(connection.address)


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
