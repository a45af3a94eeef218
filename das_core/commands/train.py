"""`das train` (the reference trainer's flags) and `das dataset check|synth`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from das_core.errors import plural
from das_core.tracking.window import DAS_WINDOW


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` and `dataset` to the `das` command."""
    from das_core.train.args import add_training_arguments

    train = subparsers.add_parser(
        "train",
        help="fine-tune the DaS tracking branch (reference trainer flags)",
        description="Fine-tune the tracking branch (copy blocks + combine linears) of DaS. Takes the reference "
        "trainer's flags; for several GPUs run `accelerate launch --config_file examples/accelerate/X.yaml "
        "-m das_core.train FLAGS` instead.",
    )
    add_training_arguments(train)
    train.set_defaults(func=run_train)

    dataset = subparsers.add_parser("dataset", help="check or synthesise a training dataset")
    commands = dataset.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    check = commands.add_parser(
        "check",
        help="report every problem of a dataset at once",
        description="Check a training dataset (prompt.txt, videos.txt, trackings.txt, images.txt or a CSV): counts, "
        "missing and unreadable files, frame counts and sizes, and tracking videos that do not look like "
        "tracking videos. Exits 1 when anything is wrong.",
    )
    check.add_argument("root", type=Path, help="dataset root folder")
    check.add_argument("--dataset_file", default=None, help="CSV with named columns instead of the .txt files")
    check.add_argument("--caption_column", default="text")
    check.add_argument("--video_column", default="video")
    check.add_argument("--tracking_column", default=None)
    check.add_argument("--image_column", default=None, help="images.txt (or the CSV column) to check too")
    check.add_argument("--frames", type=int, default=DAS_WINDOW.frames, help="frames every video must have (0: any)")
    check.add_argument("--width", type=int, default=DAS_WINDOW.width, help="video width (0: any)")
    check.add_argument("--height", type=int, default=DAS_WINDOW.height, help="video height (0: any)")
    check.add_argument("--jobs", type=int, default=2, help="videos decoded at a time")
    check.set_defaults(func=run_check)

    synth = commands.add_parser(
        "synth",
        help="render training samples from Blender scenes with exact tracking videos",
        description="For each scene and variant: render the RGB video and first frame in Blender, render the "
        "tracking video from the exported ground-truth tracks, and append the sample to the dataset in --out. "
        "Resumable: finished samples are skipped on a rerun.",
    )
    source = synth.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenes", nargs="+", type=Path, metavar="BLEND", help=".blend files")
    source.add_argument("--examples", action="store_true", help="the example scenes in examples/scenes")
    synth.add_argument("--out", type=Path, required=True, help="dataset root to create or extend")
    synth.add_argument("--engine", choices=("workbench", "eevee", "cycles"), default="workbench")
    synth.add_argument(
        "--background",
        nargs="+",
        default=["random-color"],
        metavar=("KIND", "DIR"),
        help="random-color (default) or hdri DIR (a folder of .hdr/.exr files; eevee or cycles)",
    )
    synth.add_argument("--variants", type=int, default=1, help="renders per scene, each with its own background")
    synth.add_argument("--frames", type=int, default=DAS_WINDOW.frames, help="frames per sample (default %(default)s)")
    synth.add_argument("--width", type=int, default=DAS_WINDOW.width)
    synth.add_argument("--height", type=int, default=DAS_WINDOW.height)
    synth.add_argument("--render-samples", type=int, default=64, help="Cycles/Eevee samples per frame")
    synth.add_argument(
        "--template",
        default=None,
        help="prompt for scenes without their own text ({name}, {variant}, {background}); "
        "a scene's own text is its 'das_prompt' property or a text block named 'prompt'",
    )
    synth.add_argument("--blender", default=None, metavar="PATH", help="Blender executable instead of the bpy module")
    synth.set_defaults(func=run_synth)


def run_train(args: argparse.Namespace) -> int:
    from das_core.errors import DasError
    from das_core.train.args import validate_args

    problems = validate_args(args)
    if problems:
        raise DasError("; ".join(problems))
    from das_core.train.loop import train

    result = train(args)
    print(f"trained {result.global_step} steps; the model folder {args.output_dir} loads with das infer --model_path")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from das_core.train.check import check_dataset

    report = check_dataset(
        args.root,
        args.dataset_file,
        caption_column=args.caption_column,
        video_column=args.video_column,
        tracking_column=args.tracking_column,
        image_column=args.image_column,
        num_frames=args.frames or None,
        width=args.width or None,
        height=args.height or None,
        jobs=args.jobs,
        progress=sys.stderr.isatty(),
    )
    for problem in report.problems:
        print(problem)
    samples = plural(report.num_samples, "sample")
    if report.ok:
        print(f"{report.root}: {samples}, no problems")
        return 0
    print(f"{report.root}: {samples}, {plural(len(report.problems), 'problem')}", file=sys.stderr)
    return 1


def run_synth(args: argparse.Namespace) -> int:
    from das_core.errors import DasError
    from das_core.train.synth import DEFAULT_TEMPLATE, SynthOptions, example_scenes, synthesise

    kind, *rest = args.background
    if kind not in ("random-color", "hdri") or len(rest) != (1 if kind == "hdri" else 0):
        raise DasError("--background takes random-color, or hdri DIR")
    options = SynthOptions(
        engine=args.engine,
        background=kind,
        hdri_dir=Path(rest[0]) if rest else None,
        variants=args.variants,
        num_frames=args.frames,
        width=args.width,
        height=args.height,
        render_samples=args.render_samples,
        template=args.template or DEFAULT_TEMPLATE,
        blender=args.blender,
    )
    scenes = example_scenes(args.out / "scenes") if args.examples else args.scenes
    written = synthesise(scenes, args.out, options, progress=True)
    print(f"{args.out}: wrote {plural(len(written), 'new sample')}")
    return 0
