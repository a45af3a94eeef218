"""Benchmark: what an artist waits for when pressing Generate (add-on + local preview server on loopback).

Run: python tests/benchmarks/addon_generate.py [--vertices 100000] [--percentage 100]
Reports: how long the operator holds Blender's main thread (export + Workbench reference render),
the slowest timer tick while the job runs (target: under 100 ms), the tracking render in the job's
thread, sending -> first progress message (target: under 1 s on loopback) and Generate -> strip.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bpy
import addon_utils  # importable once bpy is

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import build_scene  # noqa: E402  (the benchmark scene: armature + wave grid, zooming camera)

from das_core.local_server import LocalServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=100_000)
    parser.add_argument("--percentage", type=int, default=100, help="render resolution percentage of 1920x1080")
    args = parser.parse_args()

    scene = build_scene(args.vertices)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    from blender_addon import jobs

    scene.render.resolution_percentage = args.percentage
    work = Path(tempfile.mkdtemp(prefix="das-bench-"))
    with LocalServer("preview", work / "server") as server:
        scene.das.server = server.address
        scene.das.prompt = "a waving flag"
        scene.das.reference = "WORKBENCH"
        scene.das.output_dir = str(work / "cache")
        pressed = time.perf_counter()
        bpy.ops.das.generate()
        blocked = time.perf_counter() - pressed
        job = jobs.latest()
        ticks, first_progress, sending = [], None, None
        while job.active:
            start = time.perf_counter()
            jobs.tick()
            ticks.append(time.perf_counter() - start)
            if sending is None and job.state != "rendering":  # tracking video done; the thread submits now
                sending = time.perf_counter() - pressed
            if first_progress is None and job.state == "running":
                first_progress = time.perf_counter() - pressed
            time.sleep(0.01)
        total = time.perf_counter() - pressed
    print(
        f"{args.vertices} vertices, {scene.render.resolution_x * args.percentage // 100}x"
        f"{scene.render.resolution_y * args.percentage // 100}: operator held the main thread {blocked:.2f} s; "
        f"tracking video rendered (off the main thread) by {sending:.2f} s; first progress {first_progress:.2f} s "
        f"after pressing Generate ({first_progress - sending:.2f} s after sending); slowest tick {max(ticks) * 1000:.1f} ms "
        f"over {len(ticks)} ticks; strip in the sequencer after {total:.2f} s ({job.state})"
    )


if __name__ == "__main__":
    main()
