"""Wall-clock timings of the scenes commands, run as a user runs them (the `das` CLI in a subprocess).

Run: `python tests/benchmarks/scenes.py`. Prints a Markdown table plus the machine's load, to
append to tests/benchmarks/RESULTS.md under "## Scenes".
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def timed(label: str, arguments: list[str]) -> tuple[str, float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "das_core", *arguments], check=True, capture_output=True)
    return label, time.monotonic() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        load_before = os.getloadavg()
        rows = [
            timed("das export walk_cycle.blend (49 frames, bpy)", ["export",
                  str(EXAMPLES / "walk_cycle" / "walk_cycle.blend"), "-o", str(scratch / "walk.npz")]),
            timed("das export ... --reference-render (Workbench 720x480)", ["export",
                  str(EXAMPLES / "walk_cycle" / "walk_cycle.blend"), "-o", str(scratch / "walk.npz"),
                  "--reference-render", str(scratch / "walk.png")]),
            timed("das demo (preview)", ["demo", "--out", str(scratch / "demo"), "--no-progress"]),
            timed("das demo --backend tiny", ["demo", "--out", str(scratch / "tiny"), "--backend", "tiny",
                  "--no-progress"]),
            timed("das batch examples/batch.toml --backend preview (3 shots)", ["batch", str(EXAMPLES / "batch.toml"),
                  "--backend", "preview", "--out", str(scratch / "batch"), "--no-progress"]),
            timed("  same command again (all shots already done)", ["batch", str(EXAMPLES / "batch.toml"),
                  "--backend", "preview", "--out", str(scratch / "batch"), "--no-progress"]),
        ]  # fmt: skip
        load_after = os.getloadavg()
    print(f"{platform.node()}: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")  # fmt: skip
    print("\n| command | wall s |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
