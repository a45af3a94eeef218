"""`das generate`, `das fetch`, `das status`, `das keygen` and `das serve` (the server's CLI).

The client commands talk to a running `python -m das_server` through `das_core.wire.client.DasClient`:
frames are written as PNGs the moment they arrive and the MP4 once the job is done.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

_DEFAULT_SERVER = "tcp://127.0.0.1:5555"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the server's subcommands to `das`."""
    _register_generate(subparsers)
    _register_fetch(subparsers)
    _register_others(subparsers)


def _register_generate(subparsers: argparse._SubParsersAction) -> None:
    generate = subparsers.add_parser(
        "generate",
        help="send an image and the motion to a das server and get the video back",
        description="Ask the server which model it runs, submit a job with the control that model follows, "
        "show its progress, write each model frame as it arrives (OUT_frames/frame_00000.png ...) and the MP4 "
        "at the end. --tracks (every frame of a shot) makes the whole shot: the model's frames are planned at "
        "its frame rate (DaS 8, Wan-Move 16 fps) in windows of its length, their control (DaS: the tracking "
        "video; Wan-Move: point tracks) made at its size, the image letterboxed to match; the MP4 holds every "
        "frame of the tracks at their frame rate (--frames every, the frames between the model's made from the "
        "exact motion) or the model's frames at its rate (--frames model). --tracking (DaS) and --point-tracks "
        f"(Wan-Move) are sent as one window, sampled to the model's frames ({DAS_WINDOW.frames} for DaS).",
    )
    generate.add_argument("--image", required=True, type=Path, help="first-frame image (PNG/JPG)")
    motion = generate.add_mutually_exclusive_group(required=True)
    motion.add_argument(
        "--tracks",
        type=Path,
        metavar="TRACKS.npz",
        help="tracks of every frame of the shot (das export): any server's control is made",
    )
    motion.add_argument("--tracking", type=Path, help="DaS servers: tracking video (MP4) or folder of frames")
    motion.add_argument(
        "--point-tracks",
        type=Path,
        metavar="DIR",
        help="Wan-Move servers: DIR/tracks.npy and DIR/visibility.npy (das render-tracks), pixels of --image",
    )
    generate.add_argument("--prompt", required=True, help="what the video shows")
    generate.add_argument("--negative-prompt", default=None, help="what to avoid (default: the reference's)")
    generate.add_argument("--steps", type=int, default=None, help="denoising steps (default: DaS 50, Wan-Move 40)")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    generate.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance (default: DaS 6.0, Wan-Move 5.0)"
    )
    _frames_argument(generate)
    generate.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the MP4 (default: the tracks' with --frames every, else the model's: DaS 8, Wan-Move 16)",
    )
    generate.add_argument("--job-id", default=None, help="choose the job id (default: a random one)")
    generate.add_argument(
        "--detach",
        action="store_true",
        help="return once the server has accepted the job; prints the job id on the last line",
    )
    _output_arguments(generate)
    _server_arguments(generate)
    generate.set_defaults(func=generate_command)


def _register_fetch(subparsers: argparse._SubParsersAction) -> None:
    fetch = subparsers.add_parser(
        "fetch",
        help="download a job's video (waits while it is queued or running)",
        description="Get a job's frames and MP4 from the server, waiting with progress if it has not finished. "
        "The MP4 holds the model's frames at its frame rate; with --tracks (the tracks the job was made from "
        "by `das generate --tracks`) it is the whole shot, as generate writes it.",
    )
    fetch.add_argument("job_id", help="the id `das generate` printed")
    fetch.add_argument(
        "--tracks", type=Path, default=None, metavar="TRACKS.npz", help="make the whole shot from these tracks"
    )
    _frames_argument(fetch)
    _output_arguments(fetch)
    _server_arguments(fetch)
    fetch.set_defaults(func=fetch_command)


def _register_others(subparsers: argparse._SubParsersAction) -> None:
    """`status`, `keygen` and `serve`."""
    status = subparsers.add_parser("status", help="show the server's backend and queue, or one job's state")
    status.add_argument("job_id", nargs="?", default=None, help="a job id (default: the server summary)")
    status.add_argument("--jobs", action="store_true", help="also list recent jobs")
    _server_arguments(status)
    status.set_defaults(func=status_command)

    keygen = subparsers.add_parser(
        "keygen",
        help="make CURVE key pairs for a server reachable from the network",
        description="Create DIR/server.key(_secret) once and a client key pair DIR/NAME.key(_secret), "
        "allowed by the server (DIR/allowed_clients/NAME.key). Start the server with --keys DIR; give "
        "each artist server.key and their NAME.key_secret.",
    )
    keygen.add_argument("dir", type=Path, help="folder for the keys")
    keygen.add_argument("--client", default="client", help="name of the client key pair (default: client)")
    keygen.set_defaults(func=keygen_command)

    from das_server.__main__ import DESCRIPTION, add_arguments

    serve = subparsers.add_parser(
        "serve", help="run the GPU server (same as `python -m das_server`)", description=DESCRIPTION
    )
    add_arguments(serve)
    serve.set_defaults(func=serve_command)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=_DEFAULT_SERVER, help=f"server address (default: {_DEFAULT_SERVER})")
    parser.add_argument("--keys", type=Path, default=None, help="folder with server.key and your NAME.key_secret")
    parser.add_argument("--key-name", default="client", help="your key pair's name in --keys (default: client)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default: 10)")


def _frames_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames",
        default=None,
        metavar="every|model",
        help="with --tracks, what the MP4 holds: every frame of the tracks at their frame rate, or the model's "
        "frames at its rate (default: every)",
    )


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=None, help="MP4 to write (default: JOB_ID.mp4)")
    parser.add_argument(
        "--frames-dir",
        type=Path,
        default=None,
        help="where frames go as they arrive (default: next to the MP4, OUTPUT_frames/)",
    )


def _client(args: argparse.Namespace):
    from das_core.wire.client import DasClient
    from das_core.wire.keys import load_keys

    keys = load_keys(args.keys, args.key_name) if args.keys is not None else {}
    return DasClient(args.server, timeout=args.timeout, **keys)


def _fetch_command(job_id: str, args: argparse.Namespace) -> str:
    """The `das fetch` that gets `job_id` later from the same server with the same keys (and tracks)."""
    words = ["das", "fetch", job_id]
    if args.tracks is not None:
        words += ["--tracks", str(args.tracks)] + (["--frames", args.frames] if args.frames else [])
    if args.server != _DEFAULT_SERVER:
        words += ["--server", args.server]
    if args.keys is not None:
        words += ["--keys", str(args.keys)]
    if args.key_name != "client":
        words += ["--key-name", args.key_name]
    return shlex.join(words)


def generate_command(args: argparse.Namespace) -> int:
    from das_core.tracking.control import sampling_defaults
    from das_core.tracking.video import read_video
    from das_core.wire.client import JobRequest

    if not args.prompt.strip():
        raise DasError("--prompt is empty; describe the video you want")
    if not args.image.is_file():
        raise DasError(f"--image {args.image}: no such image file")
    images = read_video(args.image)
    if len(images) > 1:
        raise DasError(
            f"--image {args.image} is a video ({len(images)} frames); give one image (PNG/JPG), "
            "for example its first frame saved as a PNG"
        )
    image = images[0]
    motion = _read_motion(args)  # before the server is asked: bad files are reported first
    with _client(args) as client:
        info = client.info()
        window = info.window
        steps, guidance = sampling_defaults(window)
        shot = _whole_shot(args, motion, window)
        fields = _shot_fields(shot, image) if shot else _control_fields(args, motion, image, window)
        request = JobRequest(
            prompt=args.prompt, negative_prompt=args.negative_prompt, seed=args.seed, job_id=args.job_id,
            steps=args.steps or steps, guidance=guidance if args.guidance is None else args.guidance,
            fps=window.fps if shot else args.fps or window.fps, **fields,
        )  # fmt: skip
        job_id = client.submit(request)
        if args.detach:
            print(f"submitted to {args.server}; get the result with `{_fetch_command(job_id, args)}`", file=sys.stderr)
            print(job_id)
            return 0
        print(f"job {job_id} accepted by {args.server} ({info.backend}, {info.model})", file=sys.stderr)
        result = _receive(job_id, client.events(job_id), args)
    mismatch = "the server does not make one frame per control frame: run this das version there"
    _write_result(job_id, result, args, shot, args.fps or (None if shot else window.fps), mismatch)
    return 0


def _read_motion(args: argparse.Namespace):
    """What --tracks (a `Tracks`, checked for --frames), --tracking (uint8 frames) or --point-tracks
    ((tracks, visibility)) holds."""
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video
    from das_core.workflow.whole_shot import FRAMES_EVERY, check_tracks

    if args.tracks is not None:
        tracks = Tracks.load(args.tracks)
        check_tracks(tracks, args.frames or FRAMES_EVERY, str(args.tracks))
        return tracks
    if args.frames is not None:
        raise DasError(
            "--frames applies to --tracks, which hold every frame of a shot; --tracking and --point-tracks are "
            "sent as one window of the model's frames and written as they are"
        )
    if args.point_tracks is not None:
        from das_core.commands.wan_move import load_point_tracks

        return load_point_tracks(args.point_tracks)
    tracking = read_video(args.tracking, progress=True)
    if len(tracking) < 2:
        raise DasError(
            f"--tracking {args.tracking} is a single image; give the tracking video (das render-tracking makes one)"
        )
    return tracking


def _whole_shot(args: argparse.Namespace, tracks, window):
    """The --tracks shot planned at the server's `window`, or None for the other inputs."""
    from das_core.workflow.whole_shot import FRAMES_EVERY, WholeShot

    if args.tracks is None:
        return None
    return WholeShot.planned(tracks, str(args.tracks), window, args.frames or FRAMES_EVERY)


def _shot_fields(shot, image) -> dict:
    """The image letterboxed to the model's size and the shot's control, window by window."""
    from das_core.tracking.video import fit_frames

    print(f"{shot.name}: {shot.describe()}", file=sys.stderr)
    return {
        "image": fit_frames(image, *shot.window.size, resample="bilinear"),
        **shot.control(progress=True).job_fields(),
    }


def _control_fields(args: argparse.Namespace, motion, image, window) -> dict:
    """The image and the control the server's model follows (`window`), from --tracking or --point-tracks."""
    from das_core.tracking.video import fit_frames, sample_indices
    from das_core.tracking.window import POINT_TRACKS, TRACKING_VIDEO

    wants_video = window.control == TRACKING_VIDEO
    if (args.tracking is not None) != wants_video:
        needs = "a DaS tracking video" if wants_video else "point tracks"
        if window.control not in (TRACKING_VIDEO, POINT_TRACKS):
            needs = f"a {window.control!r} control"
        given = "--tracking" if args.tracking is not None else "--point-tracks"
        raise DasError(
            f"the server's model follows {needs}, which {given} does not give; pass --tracks TRACKS.npz and das "
            "makes the control the server needs"
        )
    if args.point_tracks is not None:
        tracks, visibility = motion
        if len(tracks) != window.frames:
            chosen = sample_indices(len(tracks), window.frames)
            tracks, visibility = tracks[chosen], visibility[chosen]
        return {"image": image, "point_tracks": tracks, "visibility": visibility}
    tracking = motion
    if len(tracking) != window.frames:
        tracking = tracking[sample_indices(len(tracking), window.frames)]
    height, width = tracking.shape[1:3]
    return {"image": fit_frames(image, width, height, resample="bilinear"), "tracking": tracking}


def fetch_command(args: argparse.Namespace) -> int:
    from das_core.tracking.tracks import Tracks
    from das_core.wire.protocol import check_job_id
    from das_core.workflow.whole_shot import FRAMES_EVERY, check_tracks

    job_id = check_job_id(args.job_id)
    if args.tracks is None and args.frames is not None:
        raise DasError("--frames applies with --tracks (the tracks the job was made from); without them fetch "
                       "writes the model's frames")  # fmt: skip
    tracks = None
    if args.tracks is not None:
        tracks = Tracks.load(args.tracks)
        check_tracks(tracks, args.frames or FRAMES_EVERY, str(args.tracks))
    with _client(args) as client:
        shot = _whole_shot(args, tracks, client.info().window)
        result = _receive(job_id, client.fetch(job_id), args)
    _write_result(job_id, result, args, shot, None, "fetch it with the tracks the job was made from")
    return 0


def _output_paths(job_id: str, args: argparse.Namespace) -> tuple[Path, Path]:
    """The MP4 and the folder the model frames go to."""
    output = args.output or Path(f"{job_id}.mp4")
    return output, args.frames_dir or output.with_name(output.stem + "_frames")


def _receive(job_id: str, events, args: argparse.Namespace):
    """Show progress and write the model frames as they come; return the `JobResult`."""
    from PIL import Image
    from tqdm import tqdm

    from das_core.wire.client import Accepted, Frame, Progress, ServerStopped, collect_frames
    from das_core.wire.protocol import Event

    frames_dir = _output_paths(job_id, args)[1]  # made at the first frame
    saved: set[int] = set()
    bar = tqdm(total=None, unit="step", desc=f"job {job_id[:8]}", file=sys.stderr, dynamic_ncols=True)

    def show(event: Event) -> None:
        if isinstance(event, Accepted):
            bar.set_description(f"queued, {event.position} ahead" if event.position else "starting")
        elif isinstance(event, Progress):
            bar.set_description(event.phase)
            bar.total = event.total
            bar.n = event.step
            bar.refresh()
        elif isinstance(event, Frame):
            if not saved:
                frames_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(event.image).save(frames_dir / f"frame_{event.index:05d}.png", compress_level=1)
            saved.add(event.index)
            bar.set_postfix_str(f"{len(saved)} frames")

    try:
        return collect_frames(events, on_event=show)
    except KeyboardInterrupt:
        bar.close()
        print(f"\nstopped waiting; the job goes on on the server: `{_fetch_command(job_id, args)}`", file=sys.stderr)
        raise
    except ServerStopped as error:
        bar.close()
        raise DasError(f"{error}: then run `{_fetch_command(job_id, args)}`") from None
    finally:
        bar.close()


def _write_result(job_id: str, result, args: argparse.Namespace, shot, fps: float | None, mismatch: str = "") -> Path:
    """Write the MP4: the model frames at `fps` (default: the job's), or the whole shot (`WholeShot.write`);
    `mismatch` says what to do when the frames are not the shot's model frames."""
    from das_core.tracking.video import write_mp4

    output, frames_dir = _output_paths(job_id, args)
    metadata = result.done.metadata
    if shot is None:
        path = write_mp4(output, result.frames, fps=fps or float(metadata.get("fps", DAS_WINDOW.fps)))
        line = f"wrote {path} ({len(result.frames)} frames)"
    else:
        shot.check_model_frames(len(result.frames), f"{mismatch} (its frames are in {frames_dir}/)")
        video = shot.write(output, result.frames, fps=fps, progress=True)
        path, line = video.path, video.summary()
    if metadata.get("preview"):
        print(
            "note: the server runs the preview backend; this is the reference image warped along the "
            "tracking video, not a DaS generation",
            file=sys.stderr,
        )
    print(f"{line} and {frames_dir}/", file=sys.stderr)
    return path


def status_command(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.job_id is not None:
            job = client.status(args.job_id)
            line = f"job {job.job_id}: {job.state}, {job.frames_done} frames"
            if job.state == "queued":
                line += f", {job.position} ahead"
            if job.progress is not None:
                line += f", {job.progress.phase} {job.progress.step}/{job.progress.total}"
            if job.error is not None:
                line += f" ({job.error.message})"
            print(line)
            return 0
        status = client.status()
        info = status.info
        print(f"das server at {args.server}: protocol {info.version}, das {info.das}")
        print(
            f"backend {info.backend} ({info.model}) on {info.device}"
            + (" - PREVIEW ONLY, no diffusion model" if info.preview else "")
        )
        window = info.window
        print(f"takes {window.control}: {window.width}x{window.height}, {window.frames} frames at {window.fps:g} fps")
        counts = ", ".join(f"{count} {state}" for state, count in sorted(status.jobs.items())) or "no jobs yet"
        print(f"queue: {info.queue_length} of {info.max_queue}; {counts}")
        if status.pool:
            print(f"workers: {info.workers} ready of {len(status.pool)}")
            for worker in status.pool:
                print("  " + _worker_line(worker))
        if args.jobs:
            for listed in client.list_jobs():
                print(f"  {listed.job_id}  {listed.state:<9}  {listed.prompt[:60]}")
    return 0


def _worker_line(worker) -> str:
    """One worker of a cluster server: name, node, GPUs, backend, state, job, jobs done, seconds per job."""
    speed = "-" if worker.seconds_per_job is None else f"{worker.seconds_per_job:.1f}"
    line = (
        f"{worker.name}  {worker.node or '-'}  {'GPU ' + worker.gpus if worker.gpus else 'no GPU'}  "
        f"{worker.backend}  {worker.state:<10}  job {worker.job_id or '-'}  {worker.jobs_done} done  {speed} s/job"
    )
    return f"{line}  ({worker.error})" if worker.error else line


def keygen_command(args: argparse.Namespace) -> int:
    from das_core.wire.keys import keygen

    for path in keygen(args.dir, args.client):
        print(path)
    print(
        f"start the server with --keys {args.dir}; clients use --keys DIR with server.key and "
        f"{args.client}.key_secret (keep the *_secret files private)",
        file=sys.stderr,
    )
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from das_server.__main__ import serve

    return serve(args)
