"""Benchmark: what an artist waits for when pressing Generate (add-on + local preview server on loopback).

Run: PYTHONPATH=. python tests/benchmarks/addon_generate.py [--vertices 100000] [--percentage 100] [--repeats 3]
Reports, per press: how long the operator holds Blender's main thread (export + Workbench reference
render, with the tracking video rendering in the job's thread meanwhile), when the job is sent
(tracking video and reference ready), when the server accepted it, Generate -> first progress
message (target: under 1 s on loopback), the slowest timer tick while the job runs (target: under
100 ms) and Generate -> strip; then the median of each over the repeats. The first press of a
session also pays for compiling Workbench's shaders and first-use imports: it is printed as the
warm-up press and left out of the median (`--warmup 0` keeps it in).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bpy

# isort: split
import addon_utils  # importable once bpy is

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import build_scene

from das_core.workflow.local_server import LocalServer

COLUMNS = ("held", "sending", "accepted", "first_progress", "slowest_tick", "strip")


def press(scene, jobs) -> dict[str, float]:
    """Press Generate once and follow the job to its strip; seconds after the press for each milestone."""
    marks: dict[str, float] = {}
    pressed = time.perf_counter()
    bpy.ops.das.generate()
    marks["held"] = time.perf_counter() - pressed
    job = jobs.latest()
    ticks = []
    while job.active:
        start = time.perf_counter()
        jobs.tick()
        ticks.append(time.perf_counter() - start)
        now = time.perf_counter() - pressed
        if job.state != "rendering":
            marks.setdefault("sending", now)
        if job.state in ("queued", "running"):
            marks.setdefault("accepted", now)
        if job.state == "running":
            marks.setdefault("first_progress", now)
        time.sleep(0.005)
    assert job.state == "done", job.error
    marks["slowest_tick"] = max(ticks)
    marks["strip"] = time.perf_counter() - pressed
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=100_000)
    parser.add_argument("--percentage", type=int, default=100, help="render resolution percentage of 1920x1080")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="presses before the measured ones (shader compilation)")
    args = parser.parse_args()

    scene = build_scene(args.vertices)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    from blender_addon import jobs

    scene.render.resolution_percentage = args.percentage
    work = Path(tempfile.mkdtemp(prefix="das-bench-"))
    size = f"{scene.render.resolution_x * args.percentage // 100}x{scene.render.resolution_y * args.percentage // 100}"
    runs = []
    with LocalServer("preview", work / "server") as server:
        scene.das.server = server.address
        scene.das.prompt = "a waving flag"
        scene.das.reference = "WORKBENCH"
        scene.das.output_dir = str(work / "cache")
        for index in range(args.warmup + args.repeats):
            marks = press(scene, jobs)
            if index >= args.warmup:
                runs.append(marks)
            label = "warm-up (cold) press" if index < args.warmup else f"press {index - args.warmup + 1}"
            print(f"{args.vertices} vertices, {size}, {label}: " + ", ".join(
                f"{name} {marks.get(name, float('nan')):.2f} s" for name in COLUMNS
            ) + f", load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    print(f"median of {len(runs)}: " + ", ".join(
        f"{name} {statistics.median(run.get(name, float('nan')) for run in runs):.2f} s" for name in COLUMNS
    ))  # fmt: skip


if __name__ == "__main__":
    main()
