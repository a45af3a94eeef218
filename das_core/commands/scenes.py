"""`das export` (headless .blend export), `das batch` (many shots from a spec) and `das demo`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from das_core.errors import DasError

_BACKENDS = ("preview", "tiny", "das")
_ENGINES = ("WORKBENCH", "EEVEE", "CYCLES")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export`, `batch` and `demo` to the `das` command."""
    export = subparsers.add_parser(
        "export",
        help="export a .blend file's animation to a tracks file (.npz), headless",
        description="Export every frame of the active scene's range of a .blend file to das-tracks/1 with the "
        "add-on's exporter, in a Blender process of its own: this Python's bpy module, or the Blender "
        "executable given with --blender (for when bpy does not match this Python). Every frame, at the "
        "scene's frame rate, is what `das generate --tracks` plans a whole shot from.",
    )
    export.add_argument("blend", type=Path, help="the .blend file")
    export.add_argument("-o", "--output", type=Path, required=True, help="tracks file to write (.npz)")
    export.add_argument("--camera", default=None, help="camera object name (default: the scene camera)")
    export.add_argument(
        "--frames", default=None, metavar="START:END", help="frame range, inclusive (default: the scene's)"
    )
    export.add_argument("--blender", default=None, metavar="PATH", help="Blender executable to run instead of bpy")
    export.add_argument(
        "--reference-render",
        type=Path,
        default=None,
        metavar="IMG",
        help="also render the range's first frame to IMG (PNG)",
    )
    export.add_argument(
        "--engine",
        default=None,
        type=str.upper,
        choices=_ENGINES,
        help="render engine for --reference-render (default: the scene's)",
    )
    export.set_defaults(func=run_export)

    batch = subparsers.add_parser(
        "batch",
        help="render many shots from a TOML spec through a das server, resumably",
        description="Turn every shot of a batch spec (TOML) into a tracking video and a generated video: "
        "export, tracking video, submission, results under --out with a manifest.json. Rerun the same "
        "command to resume: finished shots are skipped, unfinished ones are picked up by job id.",
    )
    batch.add_argument("spec", type=Path, help="the batch spec (.toml)")
    where = batch.add_mutually_exclusive_group()
    where.add_argument(
        "--server", default=None, metavar="ADDR", help="server address (default: the spec's, else tcp://127.0.0.1:5555)"
    )
    where.add_argument(
        "--backend", choices=_BACKENDS, default=None, help="start a local server with this backend for the batch"
    )
    batch.add_argument(
        "--model",
        default=None,
        help="with --backend das: hub id or folder of the DaS weights (default: the server's); with --backend "
        "tiny: das or wan-move",
    )
    batch.add_argument("--out", type=Path, default=None, help="output folder (default: SPEC's name + '-out' beside it)")
    batch.add_argument("--blender", default=None, metavar="PATH", help="Blender executable for .blend shots")
    batch.add_argument("--keys", type=Path, default=None, help="folder from `das keygen` for a CURVE-secured server")
    batch.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the server to answer a request (default: 10)"
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress bar (one line per shot instead)")
    batch.set_defaults(func=run_batch_command)

    _register_demo(subparsers)


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the whole pipeline on an example in under a minute, no GPU needed",
        description="Take a committed example (tracks + reference render), render its tracking video, start "
        "a local server, submit through the real client, stream the result, and write tracking.mp4, "
        "result.mp4 and comparison.png. preview (default) warps the reference image along the tracking "
        "video; tiny runs the real diffusion code with a tiny random model.",
    )
    demo.add_argument("--out", type=Path, default=Path("das-demo"), help="output folder (default: ./das-demo)")
    demo.add_argument("--backend", choices=("preview", "tiny"), default="preview", help="(default: preview)")
    demo.add_argument(
        "--model",
        choices=("das", "wan-move"),
        default=None,
        help="with --backend tiny: the tiny DaS (default) or Wan-Move model",
    )
    demo.add_argument(
        "--example",
        type=Path,
        default=None,
        help="example folder with tracks.npz, reference.png, prompt.txt (default: examples/walk_cycle)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=run_demo_command)


def run_export(args: argparse.Namespace) -> int:
    from das_core.workflow.blend_export import export_blend, parse_frame_range

    frame_start, frame_end = parse_frame_range(args.frames) if args.frames else (None, None)
    print(f"exporting {args.blend} with {args.blender or 'the bpy module'} (headless) ...", file=sys.stderr)
    result = export_blend(
        args.blend,
        args.output,
        camera=args.camera,
        frame_start=frame_start,
        frame_end=frame_end,
        blender=args.blender,
        reference_render=args.reference_render,
        engine=args.engine,
    )
    for warning in result.warnings:
        print(f"das export: warning: {warning}", file=sys.stderr)
    tracks = result.tracks
    frames = tracks.frame_numbers
    print(
        f"wrote {result.tracks_path}: {tracks.num_points} points x {tracks.num_frames} frames "
        f"(scene frames {frames[0]}..{frames[-1]} at {tracks.fps:g} fps), {tracks.width}x{tracks.height}"
    )
    if result.reference_path:
        print(f"wrote {result.reference_path}: frame {frames[0]}")
    return 0


def run_batch_command(args: argparse.Namespace) -> int:
    from das_core.wire.client import DEFAULT_ADDRESS
    from das_core.wire.keys import load_keys
    from das_core.workflow.batch import run_batch
    from das_core.workflow.batch_spec import load_spec

    if args.model and args.backend not in ("das", "tiny"):
        raise DasError("--model only applies with --backend das or tiny (a remote server chooses its own model)")
    spec = load_spec(args.spec)
    out_dir = args.out or spec.path.with_name(f"{spec.path.stem}-out")
    client_options = {"timeout": args.timeout, **(load_keys(args.keys) if args.keys else {})}
    address = None if args.backend else (args.server or spec.server or DEFAULT_ADDRESS)
    try:
        summary = run_batch(
            spec, out_dir, address=address, backend=args.backend, model=args.model, blender=args.blender,
            progress=not args.no_progress, client_options=client_options,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"job ids are kept in {out_dir / 'manifest.json'}: rerun the same command to resume", file=sys.stderr)
        raise
    print(
        f"batch: {len(summary.done)} done, {len(summary.skipped)} already done, {len(summary.failed)} failed; "
        f"manifest: {summary.manifest}"
    )
    for name, message in summary.failed.items():
        print(f"  {name}: {message}", file=sys.stderr)
    return 1 if summary.failed else 0


def run_demo_command(args: argparse.Namespace) -> int:
    from das_core.workflow.demo import DEFAULT_EXAMPLE, run_demo

    result = run_demo(
        args.out,
        backend=args.backend,
        model=args.model,
        example=args.example or DEFAULT_EXAMPLE,
        progress=not args.no_progress,
    )
    print(f"demo done in {result.seconds:.0f} s:")
    for label, path in (
        ("tracking video", result.tracking_video),
        ("result video  ", result.result_video),
        ("comparison    ", result.comparison),
    ):
        print(f"  {label} {path.resolve()}")
    return 0
