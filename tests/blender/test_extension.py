"""The built extension: bundles only torch-free code, every platform's zip is valid and carries its
wheels, and the linux-x64 zip installs into a temporary user repository and enables."""

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging import tags
from packaging.utils import parse_wheel_filename

from blender_addon import build

HERE = Path(__file__).resolve().parent
# The Python each Blender release runs (tests/blender passes on all of these; see tests/benchmarks/RESULTS.md).
# Kept apart from build.PYTHON_VERSIONS so a build that drops a Python fails here.
BLENDER_PYTHONS = {
    "4.2": "3.11", "4.3": "3.11", "4.4": "3.11", "4.5": "3.11", "5.0": "3.11", "5.1": "3.13", "5.2": "3.13", "5.3": "3.13",
}  # fmt: skip
# The wheel platform tags each Blender platform can load, for its oldest supported system:
# glibc 2.28 on Linux and macOS 11 (Blender 4.2's minimums); independent of build.PLATFORMS on purpose.
PLATFORM_TAGS = {
    "linux-x64": [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
    + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": list(tags.mac_platforms((11, 0), "arm64")),
    "macos-x64": list(tags.mac_platforms((11, 0), "x86_64")),
}


@pytest.fixture(scope="module")
def built_zips(tmp_path_factory) -> dict[str, Path]:
    """All four platform zips, built once from the wheels in blender_addon/wheels, by platform.

    Tests download nothing: the wheels come from `python -m blender_addon.build --fetch-wheels-only`,
    which .ci/run runs before the checks."""
    cache = build.ADDON_DIR / "wheels"
    missing = build.missing_wheels(list(build.PLATFORMS), cache)
    if missing:
        pytest.skip(
            f"the bundled wheels are not in {cache} ({', '.join(missing[:2])}, ...): "
            "run `python -m blender_addon.build --fetch-wheels-only` first"
        )
    zips = build.build(tmp_path_factory.mktemp("dist"), list(build.PLATFORMS), cache)
    return {effective_manifest(path)["platforms"][0]: path for path in zips}


def effective_manifest(path: Path) -> dict:
    """A built zip's manifest as Blender reads it: `[build.generated]` replaces platforms and wheels."""
    with zipfile.ZipFile(path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    manifest.update(manifest.get("build", {}).get("generated", {}))
    return manifest


def installable(wheel: str, platform: str, python: str) -> bool:
    """True if pip's tag rules let CPython `python` on the Blender `platform` install `wheel`."""
    version = tuple(int(part) for part in python.split("."))
    platforms = PLATFORM_TAGS[platform]
    supported = {
        *tags.cpython_tags(version, platforms=platforms),
        *tags.compatible_tags(version, f"cp{version[0]}{version[1]}", platforms),
    }
    return not supported.isdisjoint(parse_wheel_filename(wheel)[3])


def zip_problems(path: Path, platform: str) -> list[str]:
    """What keeps a platform zip from working on every supported Blender there; empty when nothing does.

    The manifest must list only `platform` and exactly the wheels the zip holds; for each supported
    Blender's Python there must be an installable wheel of every bundled package; no wheel may be
    one that no supported Blender on `platform` can install.
    """
    manifest = effective_manifest(path)
    problems = (
        []
        if manifest["platforms"] == [platform]
        else [f"manifest platforms {manifest['platforms']}, expected [{platform!r}]"]
    )
    with zipfile.ZipFile(path) as archive:
        shipped = sorted(name for name in archive.namelist() if name.endswith(".whl"))
    listed = sorted(name.removeprefix("./") for name in manifest["wheels"])
    if listed != shipped:
        problems.append(
            f"manifest lists {sorted(set(listed) - set(shipped))} not in the zip, zip holds {sorted(set(shipped) - set(listed))} not listed"
        )
    wheels = [name.rsplit("/", 1)[-1] for name in shipped]
    pythons = sorted(set(BLENDER_PYTHONS.values()))
    for python in pythons:
        for package in (*build.WHEEL_PACKAGES, build.CORE_WHEEL_NAME):
            name = package.lower().replace("_", "-")
            if not any(
                parse_wheel_filename(wheel)[0] == name and installable(wheel, platform, python) for wheel in wheels
            ):
                problems.append(f"no {package} wheel for Python {python}")
    problems += [
        f"{wheel} installs on no supported Blender"
        for wheel in wheels
        if not any(installable(wheel, platform, python) for python in pythons)
    ]
    return problems


def test_bundled_core_is_the_two_blender_tiers_and_holds_what_the_addon_imports():
    """The wheel carries tracking/ and wire/ (plus the package root and errors), and every das_core module
    the add-on imports is among them; the import contracts keep those tiers free of torch and bpy."""
    files = build.core_files()
    assert {"das_core/__init__.py", "das_core/errors.py", "das_core/wire/PROTOCOL.md"} <= set(files)
    assert all(name.startswith(("das_core/tracking/", "das_core/wire/")) for name in files if name.count("/") > 1), (
        files
    )
    bundled = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in files if name.endswith(".py")
    }
    imported = set()
    for path in build.ADDON_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("das_core"):
                imported.add(node.module)
    assert imported and imported <= bundled, sorted(imported - bundled)


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
    with pytest.raises(build.BuildError, match="unknown platform"):
        build.fetch_wheels(["amiga-68k"], tmp_path / "cache")


def test_fetch_wheels_only_fills_the_cache_the_build_reads(tmp_path, capsys, monkeypatch):
    """A wheel missing from the cache is named; with the cache full, `--fetch-wheels-only` runs no pip."""
    cache = tmp_path / "cache"
    pinned = [f"{name}-{importlib.metadata.version(name)}-cp3-fake.whl" for name in build.WHEEL_PACKAGES]
    for platform in build.PLATFORMS:
        for python in build.PYTHON_VERSIONS:
            (cache / f"{platform}-py{python}").mkdir(parents=True)
            for wheel in pinned:
                (cache / f"{platform}-py{python}" / wheel).touch()
    absent = cache / "windows-x64-py3.13" / pinned[1]
    absent.unlink()
    assert build.missing_wheels(list(build.PLATFORMS), cache) == ["windows-x64 Python 3.13"]
    absent.touch()
    assert build.missing_wheels(list(build.PLATFORMS), cache) == []
    monkeypatch.setattr(build.subprocess, "run", lambda *args, **kwargs: pytest.fail(f"ran {args[0]}"))
    assert build.main(["--fetch-wheels-only", "--wheel-cache", str(cache)]) == 0
    count = len(build.PLATFORMS) * len(build.PYTHON_VERSIONS) * len(pinned)
    assert capsys.readouterr().out.strip() == f"{count} wheels in {cache}"


def test_this_blenders_python_gets_wheels():
    """The running Blender's Python is the one recorded for its release, and the build bundles wheels for it."""
    bpy = pytest.importorskip("bpy")
    release = "{}.{}".format(*bpy.app.version[:2])
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert BLENDER_PYTHONS.get(release) == python, (
        f"Blender {bpy.app.version_string} runs Python {python}: record it in BLENDER_PYTHONS"
    )
    assert set(BLENDER_PYTHONS.values()) <= set(build.PYTHON_VERSIONS)


def test_every_platform_zip_passes_blenders_validator(built_zips):
    """Blender's own `extension validate` (from the bpy module or a `blender` on PATH) accepts each zip."""
    assert sorted(built_zips) == sorted(build.PLATFORMS)
    for platform, path in built_zips.items():
        assert path.name == f"das-{build.__version__}-{platform.replace('-', '_')}.zip"
        result = subprocess.run(
            build.blender_ext_command() + ["validate", str(path)], capture_output=True, text=True, timeout=60
        )  # fmt: skip
        assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr


def test_every_platform_zip_carries_its_wheels_for_each_blender_python(built_zips):
    for platform, path in built_zips.items():
        assert zip_problems(path, platform) == [], platform
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        assert "build.py" not in names and not any("torch" in name for name in names), platform


def test_zip_check_finds_a_missing_wheel_and_foreign_platforms(built_zips, tmp_path):
    """A Windows zip missing its Python 3.13 msgpack, or carrying Linux wheels, is reported (the check can fail)."""
    source = built_zips["windows-x64"]
    missing = tmp_path / "missing.zip"
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(missing, "w") as copy:
        for item in archive.infolist():
            if not item.filename.startswith("wheels/msgpack-") or "-cp311-" in item.filename:
                copy.writestr(item, archive.read(item))
    problems = zip_problems(missing, "windows-x64")
    assert "no msgpack wheel for Python 3.13" in problems and "not in the zip" in problems[0], problems
    assert "no msgpack wheel for Python 3.11" not in problems
    foreign = zip_problems(built_zips["linux-x64"], "windows-x64")
    assert foreign[0].startswith("manifest platforms ['linux-x64']") and "no pyzmq wheel for Python 3.11" in foreign, (
        foreign
    )
    assert installable("pyzmq-27.3.0-cp312-abi3-manylinux_2_28_x86_64.whl", "linux-x64", "3.13")
    assert not installable("pyzmq-27.3.0-cp312-abi3-manylinux_2_28_x86_64.whl", "linux-x64", "3.11")
    assert not installable("pillow-13.0.0-cp311-cp311-manylinux_2_34_x86_64.whl", "linux-x64", "3.11")  # glibc too new
    assert not installable("msgpack-1.2.4-cp313-cp313-macosx_14_0_arm64.whl", "macos-arm64", "3.13")  # macOS too new
    assert installable("pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl", "macos-arm64", "3.11")


@pytest.mark.slow
def test_built_extension_installs_and_enables(tmp_path, factory_scene, built_zips):
    """Installs the linux-x64 zip in a clean Blender user folder: only this Blender's Python's wheels get installed."""
    zip_path = built_zips["linux-x64"]
    user = tmp_path / "user"
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, str(HERE / "install_extension.py"), str(zip_path), str(tmp_path / "repo")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["enabled"] and report["result"] == ["FINISHED"]
    assert report["module_file"].startswith(str(tmp_path / "repo"))
    assert report["das_core_file"].startswith(str(user)), report["das_core_file"]  # from the bundled wheel
    compiled = report["compiled_modules"]  # Blender installed the wheels for its own Python only
    own = f"cpython-{sys.version_info.major}{sys.version_info.minor}-"
    assert not [name for name in compiled if "cpython-" in name and own not in name], compiled
    assert any(name.startswith(f"_imaging.{own}") for name in compiled), compiled
    assert any(name.startswith(f"_cmsgpack.{own}") for name in compiled), compiled
    # pyzmq ships a 3.11 build and a stable-ABI (abi3) build for 3.12+: one of the two, never both.
    zmq = "_zmq.abi3." if sys.version_info >= (3, 12) else f"_zmq.{own}"
    assert [name.startswith(zmq) for name in compiled if name.startswith("_zmq.")] == [True], compiled
    # Each check can fail: a name that was never registered is reported missing.
    assert report["operators"] == {
        "generate": True, "cancel": True, "preview_tracking": True, "reattach": True, "no_such_operator": False
    }  # fmt: skip
    assert [name for name, found in report["scene_das"].items() if not found] == ["no_such_setting"]
    assert report["preferences"] == "DasPreferences"
    scene = factory_scene  # the factory startup file the subprocess starts with: same frame range
    span = scene.frame_end - scene.frame_start + 1
    assert report["preview"] == ["FINISHED"]
    assert report["strips"] == [["tracking", scene.frame_start, scene.frame_end + 1, span]]  # JSON: lists
    assert report["blender"] == pytest.importorskip("bpy").app.version_string
