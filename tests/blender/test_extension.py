"""The built extension: bundles only torch-free code, installs into a temporary user repository and enables."""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from blender_addon import build

HERE = Path(__file__).resolve().parent


def test_bundled_core_is_torch_free():
    modules = build.core_modules()
    assert {"das_core.tracks", "das_core.camera", "das_core.render", "das_core.video", "das_core.protocol", "das_core.client"} <= set(modules)
    assert not [name for name in modules if build.is_forbidden(name)]
    assert build.is_forbidden("das_core.model.tiny") and not build.is_forbidden("das_core.client")


def test_manifest_renders_with_platforms_and_wheels():
    text = build.render_manifest(
        build.ADDON_DIR / "blender_manifest.toml", ["linux-x64"], ["./wheels/a.whl", "./wheels/b c.whl"]
    )
    manifest = tomllib.loads(text)
    assert manifest["platforms"] == ["linux-x64"] and manifest["wheels"] == ["./wheels/a.whl", "./wheels/b c.whl"]
    assert manifest["blender_version_min"] == "4.2.0" and "network" in manifest["permissions"]
    assert set(build.PYTHON_VERSIONS) == {"3.11", "3.13"}  # Blender 4.2-5.0, and the releases after
    assert manifest["version"] == build.__version__


def test_unknown_platform_is_refused(tmp_path):
    with pytest.raises(build.BuildError, match="unknown platform"):
        build.build(tmp_path, ["amiga-68k"], tmp_path / "cache")


@pytest.mark.slow
def test_built_extension_installs_and_enables(tmp_path, factory_scene):
    """Builds linux-x64 (wheels from PyPI, cached in blender_addon/wheels) and installs it in a clean Blender user folder."""
    try:
        zips = build.build(tmp_path / "dist", ["linux-x64"], build.ADDON_DIR / "wheels")
    except build.BuildError as error:
        if "downloading wheels" in str(error):
            pytest.skip(f"no PyPI access to fetch the bundled wheels: {error}")
        raise
    assert [path.name for path in zips] == [f"das-{build.__version__}-linux_x64.zip"]
    with zipfile.ZipFile(zips[0]) as archive:
        names = archive.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "build.py" not in names
    wheels = [name for name in names if name.endswith(".whl")]
    assert any(name.startswith("wheels/pyzmq-") for name in wheels) and any(name.startswith("wheels/msgpack-") for name in wheels)
    assert not any("torch" in name or "win_amd64" in name for name in wheels)
    assert any("-cp311-" in name for name in wheels) and any("-cp313-" in name for name in wheels)

    user = tmp_path / "user"
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, str(HERE / "install_extension.py"), str(zips[0]), str(tmp_path / "repo")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["enabled"] and report["result"] == ["FINISHED"]
    assert report["module_file"].startswith(str(tmp_path / "repo"))
    assert report["das_core_file"].startswith(str(user)), report["das_core_file"]  # from the bundled wheel
    compiled = report["compiled_modules"]  # Blender installed the wheels for its own Python only
    assert any(name.startswith("_zmq.cpython-311") for name in compiled), compiled
    assert any(name.startswith("_imaging.cpython-311") for name in compiled), compiled
    assert not any("cpython-313" in name or "abi3" in name for name in compiled), compiled
    assert report["operators"] == [True] * 3 and report["scene_das"] == [True] * 6 and report["preferences"]
    scene = factory_scene  # the factory startup file the subprocess starts with: same frame range
    span = scene.frame_end - scene.frame_start + 1
    assert report["preview"] == ["FINISHED"]
    assert report["strips"] == [["tracking", scene.frame_start, scene.frame_end + 1, span]]  # JSON: lists
    assert report["blender"] == pytest.importorskip("bpy").app.version_string
