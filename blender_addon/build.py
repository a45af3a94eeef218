"""Build the installable extension: `python -m blender_addon.build [--out DIR] [--platform P ...]`.

`--fetch-wheels-only` downloads the bundled wheels into the wheel cache and stops (CI runs it before
the tests, which never download).

Steps: copy the add-on's modules into a staging folder; pack the torch-free tiers of `das_core`
(`tracking/` and `wire/`, with the package root and its exception type) into a pure-Python wheel; download pyzmq, msgpack and Pillow wheels for each platform at Blender's Pythons
(3.11 for Blender 4.2-5.0, 3.13 after), at the versions installed here; render the manifest template with the
version, platforms and wheels; then let Blender's own `extension build` validate and zip it. Each
platform is staged and zipped on its own, with only its wheels: the `--split-platforms` of Blender 4.3
(whichever bpy runs the build; 4.2.23 and 4.4+ are fine) files `macosx_*_universal2` wheels under no
platform, which left both macOS zips without pyzmq. numpy is not bundled: Blender ships it.
"""

from __future__ import annotations

import argparse
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
from das_core.errors import DasError, plural

ADDON_DIR = Path(__file__).resolve().parent
CORE_DIR = ADDON_DIR.parent / "das_core"
# Blender 4.2 LTS through 5.0 run Python 3.11; later releases move to 3.13. Wheels for both are
# bundled: Blender installs those matching its Python (and the compiled modules' file names carry
# the Python version, so even an unfiltered install loads the right one).
PYTHON_VERSIONS = ("3.11", "3.13")
# Third-party packages das_core needs inside Blender: the wire (pyzmq, msgpack) and PNG/letterbox (Pillow).
WHEEL_PACKAGES = ("pyzmq", "msgpack", "pillow")
# The core the add-on runs on: the package root, its exception type and the two Blender-safe tiers.
# The import contracts in pyproject.toml keep these free of torch and bpy, and the add-on out of the rest.
BUNDLED_CORE = ("das_core/__init__.py", "das_core/errors.py", "das_core/tracking", "das_core/wire")
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


def core_files() -> list[str]:
    """The das_core files bundled with the add-on, relative to the repository root, sorted."""
    root = CORE_DIR.parent
    files = []
    for entry in BUNDLED_CORE:
        path = root / entry
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [
            item.relative_to(root).as_posix() for item in found if item.is_file() and item.suffix in (".py", ".md")
        ]
    return sorted(files)


def write_core_wheel(directory: Path) -> Path:
    """A py3-none-any wheel holding the bundled das_core files, so Blender installs it like any wheel."""
    dist_info = f"{CORE_WHEEL_NAME}-{__version__}.dist-info"
    files = {}
    for relative in core_files():
        files[relative] = (CORE_DIR.parent / relative).read_bytes()
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {CORE_WHEEL_NAME}\nVersion: {__version__}\n"
        "Summary: The torch-free das_core modules bundled with the das Blender extension\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: blender_addon.build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
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
    target = _wheel_dir(platform, python, cache)
    target.mkdir(parents=True, exist_ok=True)
    requirements = _requirements()
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


def fetch_wheels(platforms: list[str], cache: Path) -> list[Path]:
    """Download (or find in `cache`) the wheels of every platform and Python; returns their paths."""
    return [
        wheel
        for platform in _known(platforms)
        for python in PYTHON_VERSIONS
        for wheel in download_wheels(platform, python, cache)
    ]


def missing_wheels(platforms: list[str], cache: Path) -> list[str]:
    """'PLATFORM Python X.Y' for each wheel set `cache` does not hold complete; empty when a build needs no download."""
    requirements = _requirements()
    return [
        f"{platform.blender} Python {python}"
        for platform in _known(platforms)
        for python in PYTHON_VERSIONS
        if len(_cached_wheels(_wheel_dir(platform, python, cache), requirements)) < len(requirements)
    ]


def _wheel_dir(platform: Platform, python: str, cache: Path) -> Path:
    return cache / f"{platform.blender}-py{python}"


def _requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in WHEEL_PACKAGES]


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
    raise BuildError(
        "neither the bpy module nor a `blender` executable was found; install bpy==5.0.1 or put Blender on PATH"
    )


def _known(platforms: list[str]) -> list[Platform]:
    """The named platforms; a name not in PLATFORMS is a BuildError listing the choices."""
    unknown = [name for name in platforms if name not in PLATFORMS]
    if unknown:
        raise BuildError(
            f"{plural(len(unknown), 'unknown platform')}: {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}"
        )
    return [PLATFORMS[name] for name in platforms]


def build(out: Path, platforms: list[str], cache: Path) -> list[Path]:
    """Stage and zip the extension; returns the zip paths (one per platform)."""
    known = _known(platforms)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.zip"):
        stale.unlink()
    zips = []
    for platform in known:
        name = platform.blender
        package = stage(out / "staging" / name, [platform], cache)
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
        "--platform",
        action="append",
        choices=sorted(PLATFORMS),
        help="build only this platform (repeatable; default: all four)",
    )
    parser.add_argument(
        "--wheel-cache",
        type=Path,
        default=ADDON_DIR / "wheels",
        help="downloaded wheels are kept here (default: blender_addon/wheels)",
    )
    parser.add_argument(
        "--fetch-wheels-only",
        action="store_true",
        help="download the wheels into the wheel cache and stop (the tests build from it without downloading)",
    )
    args = parser.parse_args(argv)
    platforms = args.platform or list(PLATFORMS)
    try:
        if args.fetch_wheels_only:
            wheels = fetch_wheels(platforms, args.wheel_cache)
            print(f"{len(wheels)} wheels in {args.wheel_cache}")
            return 0
        zips = build(args.out, platforms, args.wheel_cache)
    except DasError as error:
        print(f"build: error: {error}", file=sys.stderr)
        return 1
    for path in zips:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
