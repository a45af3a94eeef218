"""A das server of our own: `python -m das_server` on a free loopback port, for `das batch` and `das demo`.

The server runs as a subprocess (its own process, so its GPU thread and sockets never share a
Python with the caller), logs to `STATE_DIR/server.log`, and is stopped on exit. Start-up waits
until the server answers `info` through the real client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from das_core.errors import DasError

# Seconds a backend may take to load before it answers: the DaS model is ~25 GB to read.
STARTUP_TIMEOUTS = {"preview": 60.0, "tiny": 300.0, "das": 3600.0}


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalServer:
    """Context manager: start a server with `backend` and `state_dir`, yield it, stop it.

    `address` is the `tcp://127.0.0.1:PORT` to give `DasClient`. A server that exits or stays
    silent for `startup_timeout` seconds (default: `STARTUP_TIMEOUTS[backend]`) raises `DasError`
    with the end of its log.
    """

    def __init__(
        self,
        backend: str,
        state_dir: str | os.PathLike,
        *,
        startup_timeout: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.backend = backend
        self.state_dir = Path(state_dir)
        self.log_path = self.state_dir / "server.log"
        self.startup_timeout = startup_timeout or STARTUP_TIMEOUTS.get(backend, 300.0)
        self.extra_args = tuple(extra_args)
        self.address = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server and wait until it answers; returns its address.

        Another program can take the free port between probing and binding; then the server
        reports "cannot listen" and start-up is tried again on a new port (three times at most).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while True:
            attempts += 1
            self.address = f"tcp://127.0.0.1:{free_loopback_port()}"
            command = [
                sys.executable, "-m", "das_server", "--backend", self.backend, "--bind", self.address,
                "--state-dir", str(self.state_dir), *self.extra_args,
            ]  # fmt: skip
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            if self._wait_until_ready():
                return self.address
            tail = self._log_tail()
            if f"cannot listen on {self.address}" not in tail or attempts == 3:
                raise DasError(
                    f"the local {self.backend} server exited at start-up (code {self._process.returncode}): "
                    f"{tail} (full log: {self.log_path})"
                )

    def _wait_until_ready(self) -> bool:
        """True once the server answers `info`; False if it exits first. Raises after the timeout."""
        from das_core.wire.client import DasClient, ServerUnavailable

        deadline = time.monotonic() + self.startup_timeout
        while self._process.poll() is None:
            try:
                with DasClient(self.address, timeout=1.0) as client:
                    client.info()
                return True
            except ServerUnavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DasError(
                        f"the local {self.backend} server did not answer within {self.startup_timeout:g} s "
                        f"(log: {self.log_path})"
                    ) from None
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Ask the server to shut down (SIGINT, as Ctrl+C would), then kill it if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"
