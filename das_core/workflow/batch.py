"""Run a batch spec: every shot becomes export, the control the server's model follows, a job, result files.

Output tree (OUT is `--out`):

    OUT/manifest.json               every shot: state, job id, parameters, output paths, error
    OUT/batch.lock                  held while a batch runs here
    OUT/server/                     the local server's jobs and log (with --backend)
    OUT/shots/NAME/tracks.npz       exported motion, every frame of the range (blend shots)
    OUT/shots/NAME/reference.png    rendered first frame (blend shots without an image)
    OUT/shots/NAME/tracking.mp4     the control sent, one frame per model frame at the model's frame rate
                                    (`das_core.tracking.shot` plans them at the window the server's `info`
                                    names): the tracking video (DaS), or the point tracks drawn on the
                                    reference (Wan-Move)
    OUT/shots/NAME/result.mp4       the shot: every frame at its frame rate (frames = "every") or the
                                    model's frames at the model's (frames = "model")
    OUT/shots/NAME/comparison.png   reference, tracking and model frames side by side

The manifest is rewritten (atomically) at every state change, and a shot's job id is recorded
before the job is submitted. A rerun therefore skips shots that are done, picks up submitted
ones by their job id (the server keeps results; a retried submit with the same id is not run
twice), and retries failed ones. A shot whose parameters changed in the spec starts over, unless
only what result.mp4 holds changed (frames, fps): then its job's frames are fetched and written again.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from das_core.errors import DasError
from das_core.tracking.window import TRACKING_VIDEO, ModelWindow
from das_core.workflow.batch_spec import BatchSpec, Shot

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "das-batch-manifest/1"
PENDING, SUBMITTED, DONE, FAILED = "pending", "submitted", "done", "failed"
# Shot parameters that change only how the job's frames are written, not the job.
_RESULT_KEYS = ("frames", "fps")
# What a shot's tracks messages tell the user to set for the model's frames only.
_MODEL_FRAMES = 'frames = "model"'


@dataclass
class BatchSummary:
    """What a run did, shot by shot (names), and where the manifest is."""

    manifest: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Manifest:
    """The batch's record on disk (JSON): one entry per shot, saved after every change."""

    def __init__(self, path: Path, spec_path: Path) -> None:
        self.path = path
        self.data = {"format": MANIFEST_FORMAT, "spec": str(spec_path), "shots": {}}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise DasError(
                    f"{path}: the batch manifest is unreadable ({error}); move it away to start over"
                ) from None
            if not isinstance(loaded, dict) or loaded.get("format") != MANIFEST_FORMAT:
                raise DasError(f"{path}: not a das batch manifest ({MANIFEST_FORMAT}); use another --out folder")
            self.data["shots"] = loaded.get("shots", {})

    def entry(self, name: str) -> dict:
        return self.data["shots"].get(name, {})

    def update(self, name: str, **fields) -> dict:
        """Merge `fields` into the shot's entry, stamp the time, save, and return the entry."""
        entry = self.data["shots"].setdefault(name, {})
        entry.update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.save()
        return entry

    def save(self) -> None:
        """Write to a temporary file and rename it over the manifest, so a kill never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def run_batch(
    spec: BatchSpec,
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    backend: str | None = None,
    model: str | None = None,
    blender: str | None = None,
    progress: bool = True,
    report: Callable[[str], None] = print,
    client_options: dict | None = None,
) -> BatchSummary:
    """Run every shot of `spec` against the server at `address`, or a local `backend` server, into `out_dir`.

    With `backend` a server is started on a free loopback port with its state in OUT/server (so
    a rerun's server still has the earlier jobs) and stopped at the end; `model` goes to it.
    OUT/batch.lock is held throughout, so two batches never share one output folder. A shot that
    fails is recorded and reported through `report`; the rest go on. Only a server that stops
    answering (`ServerUnavailable`) ends the batch early, since every later shot would fail the
    same way; rerun the same command to resume.
    """
    from das_core.workflow.local_server import LocalServer

    if (address is None) == (backend is None):
        raise DasError("give either a server address or a local backend to run the batch on")
    out_dir = Path(out_dir).resolve()
    with _exclusive(out_dir):
        manifest = Manifest(out_dir / MANIFEST_NAME, spec.path)
        if backend is None:
            return _run_on_server(spec, manifest, out_dir, address, blender, progress, report, client_options)
        server = LocalServer(backend, out_dir / "server", extra_args=("--model", model) if model else ())
        report(f"starting a local {backend} server (log: {server.log_path}) ...")
        with server:
            return _run_on_server(spec, manifest, out_dir, server.address, blender, progress, report, client_options)


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold OUT/batch.lock (an advisory lock, released when the process ends, even by a kill)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "batch.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DasError(
                f"another das batch is writing to {out_dir}; wait for it to end or use another --out"
            ) from None
        yield


def _run_on_server(
    spec: BatchSpec, manifest: Manifest, out_dir: Path, address: str, blender, progress, report, client_options
) -> BatchSummary:
    from tqdm import tqdm

    from das_core.wire.client import DasClient

    summary = BatchSummary(manifest=manifest.path)
    with DasClient(address, **(client_options or {})) as client:
        info = client.info()  # fail before any work when the server is not there
        report(f"server {address}: {info.backend} backend, model {info.model or '?'}")
        with tqdm(total=len(spec.shots), unit="shot", desc="batch", disable=not progress) as bar:
            say = report if not progress else tqdm.write
            _run_shots(spec, manifest, out_dir, client, info.window, blender, bar, summary, say)
    return summary


def _run_shots(
    spec: BatchSpec, manifest: Manifest, out_dir: Path, client, window: ModelWindow, blender, bar, summary, say
) -> None:
    """Each shot in order, prepared for the server's `window`; a failure is recorded and reported, and the next
    shot starts."""
    from das_core.wire.client import ServerUnavailable

    for shot in (shot.for_window(window) for shot in spec.shots):
        runner = _ShotRun(shot, manifest, out_dir, client, window, blender or spec.blender, bar)
        try:
            outcome = runner.run()
        except ServerUnavailable as error:
            manifest.save()
            raise ServerUnavailable(
                f"{error}; every job id is in {manifest.path}: rerun the same command to resume"
            ) from None
        except Exception as error:
            message = str(error) if isinstance(error, DasError) else f"{type(error).__name__}: {error}"
            manifest.update(shot.name, state=FAILED, error=message)
            summary.failed[shot.name] = message
            say(f"{shot.name}: FAILED: {message}")
        else:
            (summary.skipped if outcome == "already done" else summary.done).append(shot.name)
            entry = manifest.entry(shot.name)
            say(f"{shot.name}: {outcome} (job {entry['job_id']}) -> {out_dir / entry['outputs']['result_video']}")
        bar.update(1)


class _ShotRun:
    """One shot through its states: pending -> submitted (job id recorded) -> done | failed."""

    def __init__(
        self, shot: Shot, manifest: Manifest, out_dir: Path, client, window: ModelWindow, blender: str | None, bar
    ) -> None:
        self.shot = shot
        self.window = window
        self.manifest = manifest
        self.out_dir = out_dir
        self.client = client
        self.blender = blender
        self.bar = bar
        self.folder = out_dir / "shots" / shot.name
        self._last_refresh = 0.0

    def run(self) -> str:
        """Returns "already done" (skipped), "resumed" (picked up by job id), "rewritten" (the job's frames
        written again, as the spec now asks) or "done"."""
        entry = self.manifest.entry(self.shot.name)
        parameters = self.shot.parameters()
        same = _job_parameters(entry.get("parameters")) == _job_parameters(parameters) and entry.get("job_id")
        rewrite = same and entry.get("parameters") != parameters and entry.get("state") in (SUBMITTED, DONE)
        if rewrite:  # submitted again, so an interrupted rewrite is picked up by the next run
            entry = self.manifest.update(self.shot.name, parameters=parameters, state=SUBMITTED)
        if same and entry.get("state") == DONE and self._outputs_exist(entry):
            return "already done"
        if same and entry.get("state") in (SUBMITTED, DONE):
            self._status("fetching")
            events = self._fetch(entry["job_id"])
            if events is not None:
                self._finish(events)
                return "rewritten" if rewrite else "resumed"
            job_id = entry["job_id"]  # the server never got it (or forgot it): submit under the same id
        else:
            previous = entry.get("previous_job_ids", []) + ([entry["job_id"]] if entry.get("job_id") else [])
            job_id = f"{self.shot.name}-{uuid.uuid4().hex[:12]}"
            self.manifest.data["shots"][self.shot.name] = {}
            self.manifest.update(
                self.shot.name, state=PENDING, job_id=None, parameters=parameters, outputs={}, error=None,
                previous_job_ids=previous,
            )  # fmt: skip
        request, outputs = self._prepare(job_id)
        self.manifest.update(self.shot.name, state=SUBMITTED, job_id=job_id, outputs=outputs, error=None)
        self._status("submitting")
        self.client.submit(request)
        self._finish(self.client.events(job_id))
        return "done"

    def _prepare(self, job_id: str):
        """Export (blend shots), plan the shot at the server's window, make its control (tracking video or point
        tracks), read the reference: the job request and file paths."""
        from das_core.tracking.tracks import Tracks
        from das_core.tracking.video import fit_frames, read_video, write_mp4
        from das_core.wire.protocol import JobRequest
        from das_core.workflow.blend_export import export_blend

        shot, folder = self.shot, self.folder
        folder.mkdir(parents=True, exist_ok=True)
        if shot.blend is not None:
            self._status("exporting")
            reference = None if shot.image else folder / "reference.png"
            exported = export_blend(
                shot.blend, folder / "tracks.npz", camera=shot.camera, frame_start=shot.frame_start,
                frame_end=shot.frame_end, blender=self.blender, reference_render=reference,
            )  # fmt: skip
            tracks, tracks_path = exported.tracks, folder / "tracks.npz"
            self.manifest.update(shot.name, warnings=list(exported.warnings))
        else:
            tracks, tracks_path = Tracks.load(shot.tracks), shot.tracks
        whole = self._whole_shot(tracks, tracks_path)
        image_path = shot.image or folder / "reference.png"
        image = fit_frames(read_video(image_path)[0], *self.window.size, resample="bilinear")
        self._status("tracking video" if self.window.control == TRACKING_VIDEO else "point tracks")
        control = whole.control(shot.mode)
        shown = folder / "tracking.mp4"
        write_mp4(shown, control.preview(image), fps=self.window.fps)
        request = JobRequest(
            prompt=shot.prompt, image=image, negative_prompt=shot.negative_prompt, seed=shot.seed, steps=shot.steps,
            guidance=shot.guidance, job_id=job_id, fps=self.window.fps, **control.job_fields(),
        )  # fmt: skip
        outputs = {
            "tracks": self._relative(tracks_path),
            "reference": self._relative(image_path),
            "tracking_video": self._relative(shown),
            "result_video": self._relative(folder / "result.mp4"),
            "comparison": self._relative(folder / "comparison.png"),
        }
        return request, outputs

    def _whole_shot(self, tracks, tracks_path: Path):
        """The shot planned at the server's window (its tracks checked for what result.mp4 holds)."""
        from das_core.workflow.whole_shot import WholeShot

        return WholeShot.planned(tracks, str(tracks_path), self.window, self.shot.frames, _MODEL_FRAMES)

    def _fetch(self, job_id: str):
        """The job's events again from the server, or None when the server does not know the job."""
        from das_core.wire.client import ServerError

        events = self.client.fetch(job_id)
        try:
            first = next(events)
        except ServerError as error:
            if error.code == "unknown_job":
                return None
            raise
        return _chain([first], events)

    def _finish(self, events: Iterable) -> None:
        """Stream the job to its end (the client checks frames against the checksum), write the result files."""
        from PIL import Image

        from das_core.tracking.contact_sheet import comparison_sheet
        from das_core.tracking.shot import FRAMES_EVERY
        from das_core.tracking.tracks import Tracks
        from das_core.tracking.video import fit_frames, read_video
        from das_core.wire.client import Progress, collect_frames
        from das_core.wire.protocol import Event

        def show(event: Event) -> None:
            if isinstance(event, Progress):
                self._status(f"{event.phase} {event.step}/{event.total}")

        result = collect_frames(events, on_event=show)
        outputs = {key: self.out_dir / path for key, path in self.manifest.entry(self.shot.name)["outputs"].items()}
        whole = self._whole_shot(Tracks.load(outputs["tracks"]), outputs["tracks"])
        whole.check_model_frames(
            len(result.frames), "the server does not make one frame per control frame: run this das version there"
        )
        self._status("in-betweening" if self.shot.frames == FRAMES_EVERY else "writing result")
        video = whole.write(outputs["result_video"], result.frames, fps=self.shot.fps)
        reference = fit_frames(read_video(outputs["reference"])[0], *self.window.size, resample="bilinear")
        sheet = comparison_sheet(reference, read_video(outputs["tracking_video"]), result.frames)
        Image.fromarray(sheet).save(outputs["comparison"], optimize=True)
        done = result.done
        self.manifest.update(
            self.shot.name, state=DONE, checksum=done.checksum, num_frames=done.num_frames, result_frames=video.frames,
            result_fps=video.fps, metadata=done.metadata, error=None,
        )  # fmt: skip

    def _outputs_exist(self, entry: dict) -> bool:
        outputs = entry.get("outputs") or {}
        return bool(outputs) and all((self.out_dir / path).is_file() for path in outputs.values())

    def _relative(self, path: Path) -> str:
        """Paths inside OUT are stored relative to it (the tree can move); others stay absolute."""
        path = Path(path).resolve()
        return path.relative_to(self.out_dir).as_posix() if path.is_relative_to(self.out_dir) else str(path)

    def _status(self, text: str) -> None:
        """Show what the shot is doing after the bar (redrawn at most 5 times a second)."""
        now = time.monotonic()
        refresh = now - self._last_refresh > 0.2
        self._last_refresh = now if refresh else self._last_refresh
        self.bar.set_postfix_str(f"{self.shot.name}: {text}", refresh=refresh)


def _job_parameters(parameters: dict | None) -> dict:
    """The parameters that decide a shot's job (all but `_RESULT_KEYS`)."""
    return {key: value for key, value in (parameters or {}).items() if key not in _RESULT_KEYS}


def _chain(head: list, tail: Iterable) -> Iterable:
    yield from head
    yield from tail
