"""`--ray` without Ray installed, and the pool's options without `--ray`: one clear line, exit 2."""

from __future__ import annotations

import sys

from das_server.__main__ import main
from tests.server.conftest import free_port


def test_ray_option_without_ray_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    bind = f"tcp://127.0.0.1:{free_port()}"
    assert main(["--backend", "sleep", "--ray", "--bind", bind, "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "das[cluster]"' in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_pool_options_need_ray(tmp_path, capsys):
    assert main(["--backend", "sleep", "--workers", "2", "--state-dir", str(tmp_path / "s")]) == 2
    assert "add --ray" in capsys.readouterr().err
    assert main(["--backend", "sleep", "--ray", "--workers", "0", "--state-dir", str(tmp_path / "s")]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
