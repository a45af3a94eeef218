"""The one-command demo: a committed example all the way through a real local server and client.

Steps: start `python -m das_server` on a free loopback port, ask it (`info`) which model it runs,
plan the example's shot at that model's frame rate and make its control from the example's tracks
(the tracking video, or Wan-Move's point tracks), submit through `DasClient`, stream the model's
frames back, in-between every timeline frame from the exact motion, and write `tracking.mp4` (the
control, at the model's frame rate), `result.mp4` (the whole shot at the scene's) and `comparison.png`. No GPU and no weights: the
`preview` backend warps the reference image along the tracking video; `tiny` runs the real
diffusion code with a tiny random DaS or Wan-Move model (its output is noise-like, the point is the
code path).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from das_core.errors import DasError
from das_core.tracking.contact_sheet import comparison_sheet
from das_core.tracking.shot import FRAMES_EVERY
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import fit_frames, read_video, write_mp4
from das_core.tracking.window import TRACKING_VIDEO, ModelWindow
from das_core.wire.client import DasClient, Frame, Progress, collect_frames
from das_core.wire.protocol import Event, JobRequest
from das_core.workflow.local_server import LocalServer
from das_core.workflow.whole_shot import WholeShot

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DEFAULT_EXAMPLE = EXAMPLES_DIR / "walk_cycle"
EXAMPLE_FILES = ("tracks.npz", "reference.png", "prompt.txt")
DEMO_STEPS = {"preview": 50, "tiny": 4, "das": 50, "wan-move": 40}


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
    model: str | None = None,
    example: str | os.PathLike = DEFAULT_EXAMPLE,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo on `example` (a folder with tracks.npz, reference.png, prompt.txt) into `out_dir`.

    `model` goes to the server (`tiny` takes das or wan-move). tracking.mp4 is the control the server's
    model follows: the tracking video, or the point tracks drawn on the reference.
    """
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
    prompt = prompt_path.read_text(encoding="utf-8").strip()
    with _local_client(backend, model, report) as client:
        window = client.info().window
        shot, fields, reference, tracking_path = _prepare(example, window, out_dir, progress, report)
        request = JobRequest(
            prompt=prompt, image=reference, steps=DEMO_STEPS[backend], seed=42, fps=window.fps, **fields
        )  # fmt: skip
        result = _generate(client, request, progress, report)
    report("[4/4] in-betweening every frame of the shot, writing result.mp4 and the comparison image")
    result_path = shot.write(out_dir / "result.mp4", result, progress=progress).path
    comparison_path = out_dir / "comparison.png"
    sheet = comparison_sheet(reference, read_video(tracking_path), result)
    Image.fromarray(sheet).save(comparison_path, optimize=True)
    return DemoResult(tracking_path, result_path, comparison_path, time.monotonic() - started)


@contextmanager
def _local_client(backend: str, model: str | None, report: Callable[[str], None]) -> Iterator[DasClient]:
    """A throwaway local server with `backend` (and `model`), and a real client connected to it."""
    with tempfile.TemporaryDirectory(prefix="das-demo-server-") as state_dir:
        report(f"[1/4] starting a local {backend} server")
        extra_args = ("--model", model) if model else ()
        with LocalServer(backend, state_dir, extra_args=extra_args) as server, DasClient(server.address) as client:
            yield client


def _prepare(
    example: Path, window: ModelWindow, out_dir: Path, progress: bool, report: Callable[[str], None]
) -> tuple[WholeShot, dict, np.ndarray, Path]:
    """The example's shot planned for `window`, its control's job fields, the fitted reference, and
    tracking.mp4 showing the control."""
    tracks_path = example / "tracks.npz"
    shot = WholeShot.planned(Tracks.load(tracks_path), str(tracks_path), window, FRAMES_EVERY, None)
    reference = fit_frames(read_video(example / "reference.png")[0], *window.size, resample="bilinear")
    what = "tracking video" if window.control == TRACKING_VIDEO else "point tracks"
    report(f"[2/4] making the {what} of {example.name} ({shot.tracks.num_points} points; {shot.describe()})")
    control = shot.control(progress=progress)
    tracking_path = write_mp4(out_dir / "tracking.mp4", control.preview(reference), fps=window.fps)
    return shot, control.job_fields(), reference, tracking_path


def _generate(client: DasClient, request: JobRequest, progress: bool, report: Callable[[str], None]) -> np.ndarray:
    """Submit `request` through the real client and stream it: the model's frames."""
    report(f"[3/4] submitting to {client.address} and streaming the result")
    job_id = client.submit(request)
    with tqdm(total=None, unit="frame", desc="result", disable=not progress) as bar:

        def show(event: Event) -> None:
            if isinstance(event, Progress):
                bar.set_postfix_str(f"{event.phase} {event.step}/{event.total}")
            elif isinstance(event, Frame):
                bar.update(1)

        result = collect_frames(client.events(job_id), on_event=show)
    return result.frames
