"""Import rules, from one source: the contracts in pyproject.toml ([tool.importlinter]) and the bundled
tiers in `blender_addon.build.BUNDLED_CORE`.

`lint-imports` checks the contracts statically; these tests check that the checker can fail, and that
what Blender gets really imports with torch and bpy absent (Blender's Python has neither torch nor,
outside Blender, bpy), as does `das --help`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blender_addon import build

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = 'import sys; sys.modules["torch"] = None; sys.modules["bpy"] = None\n'


def _run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK + code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if executable is None:
        pytest.skip("import-linter is not installed (pip install -e '.[lint]')")
    return subprocess.run(
        [executable, "--no-logo", "--no-cache"], capture_output=True, text=True, timeout=120, cwd=root
    )


def test_bundled_tiers_import_without_torch_or_bpy():
    modules = [
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in build.core_files()
        if name.endswith(".py")
    ]
    assert "das_core.wire.client" in modules and "das_core.tracking.tracks" in modules
    result = _run_blocked("".join(f"import {module}\n" for module in modules))
    assert result.returncode == 0, f"a bundled module needs torch or bpy at import time:\n{result.stderr[-2000:]}"


def test_das_help_builds_every_command_without_torch_or_bpy():
    """`das --help` imports every command module: heavy imports must wait inside the commands."""
    result = _run_blocked(
        "from das_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as exit:\n    sys.exit(exit.code)\n"
    )
    assert result.returncode == 0, f"das --help needs torch or bpy:\n{result.stderr[-2000:]}"
    assert "usage: das" in result.stdout


def test_the_block_really_blocks():
    """Guard against a test that passes vacuously: importing torch under the block must fail."""
    result = _run_blocked("import torch")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("das_core/tracking/tracks.py", "import torch", "run inside Blender"),
        ("das_core/wire/protocol/codec.py", "import bpy", "run inside Blender"),
        ("das_core/tracking/video.py", "import zmq", "no networking"),
        ("das_core/workflow/batch.py", "import das_server.server", "only the CLI's server command"),
        ("blender_addon/panel.py", "import das_core.model", "only the bundled tiers"),
        ("das_core/tracking/camera.py", "import das_core.tracking.render", "no two sibling modules"),
    ],
)
def test_contracts_fail_on_a_forbidden_import(tmp_path, module, line, contract):
    """Each contract breaks when a copy of the tree gets the import it forbids (so the checker can fail)."""
    for part in ("das_core", "das_server", "blender_addon"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "wheels"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n\ndef _broken():\n    {line}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, broken[-2000:]


def test_the_tree_keeps_every_contract():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
