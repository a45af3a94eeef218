"""Build the installable extension: `python -m blender_addon.build [--out DIR] [--platform P ...]`.

Steps: copy the add-on's modules into a staging folder; pack the torch-free `das_core` modules the
add-on imports (found by following imports, refusing the model, pipeline and training code) into a
pure-Python wheel; download pyzmq, msgpack and Pillow wheels for each platform at Blender's Pythons
(3.11 for Blender 4.2-5.0, 3.13 after), at the versions installed here; render the manifest template with the
version, platforms and wheels; then let Blender's own `extension build` validate and zip it. Each
platform is staged and zipped on its own, with only its wheels: the `--split-platforms` of Blender 4.3
(whichever bpy runs the build; 4.2.23 and 4.4+ are fine) files `macosx_*_universal2` wheels under no
platform, which left both macOS zips without pyzmq. numpy is not bundled: Blender ships it.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from das_core import __version__
from das_core.errors import DasError

ADDON_DIR = Path(__file__).resolve().parent
CORE_DIR = ADDON_DIR.parent / "das_core"
# Blender 4.2 LTS through 5.0 run Python 3.11; later releases move to 3.13. Wheels for both are
# bundled: Blender installs those matching its Python (and the compiled modules' file names carry
# the Python version, so even an unfiltered install loads the right one).
PYTHON_VERSIONS = ("3.11", "3.13")
# Third-party packages das_core needs inside Blender: the wire (pyzmq, msgpack) and PNG/letterbox (Pillow).
WHEEL_PACKAGES = ("pyzmq", "msgpack", "pillow")
# das_core modules that import torch or are CLI-only; the add-on must never need them.
FORBIDDEN_CORE = ("das_core.model", "das_core.pipeline", "das_core.train", "das_core.commands", "das_core.cli")
CORE_WHEEL_NAME = "das_blender_core"
_NOT_SHIPPED = ("build.py", "__pycache__", "wheels")


@dataclass(frozen=True)
class Platform:
    """A Blender platform name and the pip platform tag whose wheels run there."""

    blender: str
    pip_tag: str


PLATFORMS = {
    platform.blender: platform
    for platform in (
        Platform("linux-x64", "manylinux_2_28_x86_64"),  # Blender 4.2+ needs glibc 2.28
        Platform("windows-x64", "win_amd64"),
        Platform("macos-arm64", "macosx_11_0_arm64"),  # Blender 4.2+ needs macOS 11.2
        Platform("macos-x64", "macosx_11_0_x86_64"),
    )
}


class BuildError(DasError):
    """The extension cannot be built; the message names the step and what to fix."""


def core_modules() -> list[str]:
    """The das_core modules the add-on imports, directly or through each other, sorted."""
    pending = [name for path in sorted(ADDON_DIR.glob("*.py")) if path.name != "build.py" for name in _core_imports(path)]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in found:
            continue
        if is_forbidden(name):
            raise BuildError(f"the add-on would bundle {name}, which needs torch or the CLI; keep Blender-side code torch-free")
        path = CORE_DIR / (name.split(".", 1)[1].replace(".", "/") + ".py") if "." in name else CORE_DIR / "__init__.py"
        if not path.is_file():
            raise BuildError(f"the add-on imports {name}, but {path} does not exist")
        found.add(name)
        pending.extend(_core_imports(path))
    found.add("das_core")
    return sorted(found)


def is_forbidden(name: str) -> bool:
    """True for the torch or CLI modules (and their submodules) that must stay out of Blender."""
    return any(name == forbidden or name.startswith(forbidden + ".") for forbidden in FORBIDDEN_CORE)


def _core_imports(path: Path) -> list[str]:
    """Every `das_core` module a source file imports, at the top or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == "das_core"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "das_core":
            if node.module == "das_core":  # `from das_core import camera` names modules
                names += [f"das_core.{alias.name}" for alias in node.names if (CORE_DIR / f"{alias.name}.py").is_file()]
            else:
                names.append(node.module)
    return names


def write_core_wheel(directory: Path) -> Path:
    """A py3-none-any wheel holding the torch-free das_core modules, so Blender installs it like any wheel."""
    dist_info = f"{CORE_WHEEL_NAME}-{__version__}.dist-info"
    files = {}
    for name in core_modules():
        relative = "das_core/__init__.py" if name == "das_core" else name.replace(".", "/") + ".py"
        files[relative] = (CORE_DIR.parent / relative).read_bytes()
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {CORE_WHEEL_NAME}\nVersion: {__version__}\n"
        "Summary: The torch-free das_core modules bundled with the das Blender extension\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: blender_addon.build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{CORE_WHEEL_NAME}-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def download_wheels(platform: Platform, python: str, cache: Path) -> list[Path]:
    """pyzmq, msgpack and Pillow wheels for `platform` and `python`, pinned to the versions installed here."""
    target = cache / f"{platform.blender}-py{python}"
    target.mkdir(parents=True, exist_ok=True)
    requirements = [f"{name}=={importlib.metadata.version(name)}" for name in WHEEL_PACKAGES]
    wheels = _cached_wheels(target, requirements)
    if len(wheels) == len(requirements):
        return wheels
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
        "--python-version", python, "--implementation", "cp", "--platform", platform.pip_tag,
        "--dest", str(target), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(
            f"downloading wheels for {platform.blender}, Python {python} failed ({result.stderr.strip().splitlines()[-1:]}); "
            f"check access to PyPI or put the wheels in {target}"
        )
    return _cached_wheels(target, requirements)


def _cached_wheels(directory: Path, requirements: list[str]) -> list[Path]:
    """The wheels in `directory` that match the pinned requirements (one per requirement)."""
    found = []
    for requirement in requirements:
        name, version = requirement.split("==")
        prefix = f"{name.replace('-', '_').lower()}-{version}-"
        found += [path for path in sorted(directory.glob("*.whl")) if path.name.lower().startswith(prefix)][:1]
    return found


def render_manifest(template: Path, platforms: list[str], wheels: list[str]) -> str:
    """The manifest template with the package version, platforms and wheel paths filled in."""
    manifest = tomllib.loads(template.read_text())
    manifest.update(version=__version__, platforms=platforms, wheels=wheels)
    return _to_toml(manifest)


def _to_toml(table: dict, prefix: str = "") -> str:
    """TOML for the manifest's shapes: strings, lists of strings and one level of sub-tables."""
    lines, tables = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            tables.append(f"\n[{prefix}{key}]\n" + _to_toml(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_quote(item) for item in value)}]")
        else:
            lines.append(f"{key} = {_quote(value)}")
    return "\n".join(lines) + "\n" + "".join(tables)


def _quote(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def stage(staging: Path, platforms: list[Platform], cache: Path) -> Path:
    """Fill `staging` with the add-on, its wheels and the rendered manifest; returns the add-on folder."""
    package = staging / "das"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(ADDON_DIR, package, ignore=shutil.ignore_patterns(*_NOT_SHIPPED, "*.pyc"))
    wheels_dir = package / "wheels"
    wheels_dir.mkdir()
    wheels = [write_core_wheel(wheels_dir)]
    for platform in platforms:
        for python in PYTHON_VERSIONS:
            for wheel in download_wheels(platform, python, cache):
                wheels.append(Path(shutil.copy2(wheel, wheels_dir)))
    manifest = render_manifest(
        ADDON_DIR / "blender_manifest.toml",
        [platform.blender for platform in platforms],
        [f"./wheels/{wheel.name}" for wheel in sorted(set(wheels))],
    )
    (package / "blender_manifest.toml").write_text(manifest)
    return package


def blender_ext_command() -> list[str]:
    """How to run Blender's extension tool: the copy inside the bpy module, or a `blender` on PATH."""
    spec = importlib.util.find_spec("bpy")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            for script in sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")):
                return [sys.executable, str(script)]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--background", "--command", "extension"]
    raise BuildError("neither the bpy module nor a `blender` executable was found; install bpy==5.0.1 or put Blender on PATH")


def build(out: Path, platforms: list[str], cache: Path) -> list[Path]:
    """Stage and zip the extension; returns the zip paths (one per platform)."""
    unknown = [name for name in platforms if name not in PLATFORMS]
    if unknown:
        raise BuildError(f"unknown platform(s) {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.zip"):
        stale.unlink()
    zips = []
    for name in platforms:
        package = stage(out / "staging" / name, [PLATFORMS[name]], cache)
        path = out / f"das-{__version__}-{name.replace('-', '_')}.zip"  # the name `--split-platforms` gives
        command = blender_ext_command() + ["build", "--source-dir", str(package), "--output-filepath", str(path)]
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONNOUSERSITE": "1"})
        if result.returncode != 0 or not path.is_file():
            raise BuildError(f"Blender's extension build failed for {name}:\n{(result.stdout + result.stderr).strip()}")
        zips.append(path)
    return sorted(zips)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blender_addon.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/blender"), help="output folder (default: dist/blender)")
    parser.add_argument(
        "--platform", action="append", choices=sorted(PLATFORMS), help="build only this platform (repeatable; default: all four)"
    )
    parser.add_argument(
        "--wheel-cache", type=Path, default=ADDON_DIR / "wheels", help="downloaded wheels are kept here (default: blender_addon/wheels)"
    )
    args = parser.parse_args(argv)
    try:
        zips = build(args.out, args.platform or list(PLATFORMS), args.wheel_cache)
    except DasError as error:
        print(f"build: error: {error}", file=sys.stderr)
        return 1
    for path in zips:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
