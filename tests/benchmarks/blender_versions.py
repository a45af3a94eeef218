"""Run the add-on's tests on each Blender release PyPI has as `bpy`, each in a venv of its Python.

    python tests/benchmarks/blender_versions.py [--release 4.3.0 ...] [--venvs /tmp] [--keep] [-- PYTEST_ARGS]

Default: 4.2.23, 4.3.0, 4.4.0, 4.5.15 and 5.0.1 (Python 3.11, numpy 1.26.4 as those Blenders ship)
and 5.1.2, 5.2.3 and 5.3.0 (Python 3.13). One venv per Python (`venv-bpy311`, `venv-bpy313`) holds
torch 2.13.0 (the tiny server backend the Cancel test starts), the project with `[model]`, pytest
and pytest-timeout; `bpy==RELEASE` is swapped in for each release. The tests run from a snapshot of
HEAD (`git archive`), so uncommitted edits in the working tree do not leak in. Prints a Markdown
table (release, Python, passed/failed/skipped, wall time); venvs (1.5-5 GB each) are deleted unless
--keep. Needs PyPI (bpy wheels are ~400 MB each).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASES = {  # bpy release -> the Python its wheels are built for
    "4.2.23": "3.11", "4.3.0": "3.11", "4.4.0": "3.11", "4.5.15": "3.11", "5.0.1": "3.11",
    "5.1.2": "3.13", "5.2.3": "3.13", "5.3.0": "3.13",
}  # fmt: skip
NUMPY = {"3.11": "1.26.4", "3.13": None}  # None: whatever bpy pulls in (numpy 1.26 has no 3.13 wheels)
TESTS = ["tests/blender"]


def pip(venv: Path, *args: str) -> None:
    """`pip install -q ARGS` in `venv`; raises with pip's last lines on failure."""
    result = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"pip install {' '.join(args)} failed in {venv}:\n{result.stderr.strip()[-2000:]}")


def prepare(venv: Path, python: str, interpreter: str, release: str) -> None:
    """Create `venv` once (torch, the project, pytest), then install `bpy==release` (and the numpy pin)."""
    if not (venv / ".das-ready").exists():
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
        pip(venv, "torch==2.13.0")
        pip(venv, "-e", f"{REPO}[model]", "pytest", "pytest-timeout")
        (venv / ".das-ready").touch()
    pip(venv, f"bpy=={release}")
    if NUMPY[python]:
        pip(venv, f"numpy=={NUMPY[python]}")


def run_tests(venv: Path, snapshot: Path, pytest_args: list[str]) -> tuple[dict[str, int], float, str]:
    """Run the tests from `snapshot`; returns the outcome counts, the wall time and pytest's summary line."""
    started = time.monotonic()
    command = [str(venv / "bin/python"), "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider", *pytest_args]
    result = subprocess.run(command, cwd=snapshot, capture_output=True, text=True)
    wall = time.monotonic() - started
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    return counts, wall, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--release", action="append", choices=sorted(RELEASES), help="bpy release (repeatable; default: all)"
    )
    parser.add_argument(
        "--venvs", type=Path, default=Path(tempfile.gettempdir()), help="where the venvs go (default: /tmp)"
    )
    parser.add_argument(
        "--python-3.11", dest="py311", default=shutil.which("python3.11"), help="a Python 3.11 interpreter"
    )
    parser.add_argument(
        "--python-3.13", dest="py313", default=shutil.which("python3.13"), help="a Python 3.13 interpreter"
    )
    parser.add_argument("--keep", action="store_true", help="keep the venvs for another run")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    interpreters = {"3.11": args.py311, "3.13": args.py313}
    releases = args.release or list(RELEASES)
    missing = sorted({RELEASES[release] for release in releases if not interpreters[RELEASES[release]]})
    if missing:
        parser.error(f"no interpreter for Python {', '.join(missing)}; pass --python-{missing[0]} PATH")

    rows = []
    with tempfile.TemporaryDirectory(prefix="das-snapshot-") as snapshot:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", snapshot], input=archive, check=True)
        wheels = REPO / "blender_addon" / "wheels"  # the build's download cache (ignored by git)
        if wheels.is_dir():
            (Path(snapshot) / "blender_addon" / "wheels").symlink_to(wheels)
        for release in releases:
            python = RELEASES[release]
            venv = args.venvs / f"venv-bpy{python.replace('.', '')}"
            print(f"bpy {release}: preparing {venv} ...", flush=True)
            prepare(venv, python, interpreters[python], release)
            print(f"bpy {release}: running {' '.join(TESTS)} at {commit} ...", flush=True)
            counts, wall, summary = run_tests(venv, Path(snapshot), args.pytest_args)
            print(f"bpy {release}: {summary}", flush=True)
            rows.append((release, python, counts, wall))
    if not args.keep:
        for python in sorted({RELEASES[release] for release in releases}):
            shutil.rmtree(args.venvs / f"venv-bpy{python.replace('.', '')}", ignore_errors=True)

    print(f"\n| bpy | Python | passed | failed | skipped | wall |  (HEAD {commit})\n|---|---|---|---|---|---|")
    for release, python, counts, wall in rows:
        failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
        print(
            f"| {release} | {python} | {counts.get('passed', 0)} | {failed} | {counts.get('skipped', 0)} | {wall:.0f} s |"
        )
    return 0 if all(counts.get("passed") and not set(counts) - {"passed", "skipped"} for _, _, counts, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
