"""The one-command demo: a committed example all the way through a real local server and client.

Steps: load the example's tracks and reference render, render its tracking video, start
`python -m das_server` on a free loopback port, submit through `DasClient`, stream the frames
back, and write `tracking.mp4`, `result.mp4` and `comparison.png`. No GPU and no weights: the
`preview` backend warps the reference image along the tracking video; `tiny` runs the real
diffusion code with a tiny random model (its output is noise-like, the point is the code path).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DEFAULT_EXAMPLE = EXAMPLES_DIR / "walk_cycle"
EXAMPLE_FILES = ("tracks.npz", "reference.png", "prompt.txt")
DEMO_STEPS = {"preview": 50, "tiny": 4, "das": 50}


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its three files, and how long it took."""

    tracking_video: Path
    result_video: Path
    comparison: Path
    seconds: float


def run_demo(
    out_dir: str | os.PathLike,
    *,
    backend: str = "preview",
    example: str | os.PathLike = DEFAULT_EXAMPLE,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo on `example` (a folder with tracks.npz, reference.png, prompt.txt) into `out_dir`."""
    from PIL import Image

    from das_core.tracking.contact_sheet import comparison_sheet
    from das_core.tracking.render import render_tracking
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import fit_frames, read_video, write_mp4
    from das_core.wire.protocol import JobRequest

    started = time.monotonic()
    if backend == "tiny":  # said first, so nobody takes the result for a broken model
        report(
            "note: the tiny backend runs the real diffusion code with a tiny random model, so result.mp4 is "
            "noise, not a picture; --backend preview warps the reference image instead"
        )
    example, out_dir = Path(example), Path(out_dir)
    tracks_path, reference_path, prompt_path = (example / name for name in EXAMPLE_FILES)
    for path in (tracks_path, reference_path, prompt_path):
        if not path.is_file():
            raise DasError(
                f"example file {path} is missing; run from a das source checkout or pass --example DIR "
                "(a folder with tracks.npz, reference.png and prompt.txt, as made by examples/build_examples.py)"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks = Tracks.load(tracks_path)
    reference = fit_frames(read_video(reference_path)[0], *DAS_WINDOW.size, resample="bilinear")

    report(
        f"[1/4] rendering the tracking video of {example.name} ({tracks.num_points} points, {DAS_WINDOW.frames} frames)"
    )
    mode = "mesh" if tracks.faces is not None else "points"
    tracking = render_tracking(tracks, mode, DAS_WINDOW.frames, fit=DAS_WINDOW.size, progress=progress)
    tracking_path = write_mp4(out_dir / "tracking.mp4", tracking, fps=DAS_WINDOW.fps)

    request = JobRequest(
        prompt=prompt_path.read_text(encoding="utf-8").strip(), image=reference, tracking=tracking,
        steps=DEMO_STEPS[backend], seed=42,
    )  # fmt: skip
    result, fps = _generate_on_local_server(backend, request, progress, report)
    result_path = write_mp4(out_dir / "result.mp4", result, fps=fps)

    report("[4/4] writing the comparison image")
    comparison_path = out_dir / "comparison.png"
    Image.fromarray(comparison_sheet(reference, tracking, result)).save(comparison_path, optimize=True)
    return DemoResult(tracking_path, result_path, comparison_path, time.monotonic() - started)


def _generate_on_local_server(
    backend: str, request, progress: bool, report: Callable[[str], None]
) -> tuple[np.ndarray, float]:
    """Start a throwaway server, submit `request` through the real client, stream it: (frames, fps)."""
    from tqdm import tqdm

    from das_core.wire.client import DasClient, Frame, Progress, collect_frames
    from das_core.wire.protocol import Event
    from das_core.workflow.local_server import LocalServer

    with tempfile.TemporaryDirectory(prefix="das-demo-server-") as state_dir:
        report(f"[2/4] starting a local {backend} server")
        with LocalServer(backend, state_dir) as server, DasClient(server.address) as client:
            report(f"[3/4] submitting to {server.address} and streaming the result")
            job_id = client.submit(request)
            with tqdm(total=len(request.tracking), unit="frame", desc="result", disable=not progress) as bar:

                def show(event: Event) -> None:
                    if isinstance(event, Progress):
                        bar.set_postfix_str(f"{event.phase} {event.step}/{event.total}")
                    elif isinstance(event, Frame):
                        bar.update(1)

                result = collect_frames(client.events(job_id), on_event=show)
    return result.frames, float(result.done.metadata.get("fps", DAS_WINDOW.fps))
