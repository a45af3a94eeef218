"""What a newcomer reads after a small mistake: the message names the mistake, not a symptom of it."""

from __future__ import annotations

import pytest

from das_core.cli import main as das_main
from tests.server.conftest import run_server_cli


@pytest.mark.parametrize(
    "bind, message",
    [
        ("127.0.0.1:5555", "needs a scheme: tcp://127.0.0.1:5555"),
        ("tcp://127.0.0.1:99999", "port 99999 is invalid; use 1 to 65535"),
        ("tcp://127.0.0.1", "needs a host and a port: tcp://HOST:PORT"),
    ],
)
def test_server_refuses_a_bind_address_it_would_misread(tmp_path, bind, message):
    result = run_server_cli("--backend", "preview", "--bind", bind, "--state-dir", str(tmp_path / "s"), timeout=20)
    assert result.returncode == 2
    assert message in result.stderr and "encryption" not in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "server, message",
    [
        ("127.0.0.1:5555", "needs a scheme: tcp://127.0.0.1:5555"),
        ("tcp://127.0.0.1:99999", "port 99999 is invalid; use 1 to 65535"),
        ("tcp://127.0.0.1:0", "port 0 is invalid; use 1 to 65535"),
    ],
)
def test_client_refuses_a_server_address_it_would_misread(capsys, server, message):
    assert das_main(["status", "--server", server, "--timeout", "0.5"]) == 1
    error = capsys.readouterr().err
    assert message in error and "no das server answered" not in error
