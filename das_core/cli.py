"""The `das` command line: a thin argparse front over the library.

Each area adds its subcommands from its own module in `das_core.commands`; every subcommand
sets `func`, which takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from das_core import __version__
from das_core.errors import DasError

# Order is the order `das --help` lists them in.
_COMMAND_MODULES = (
    "das_core.commands.render",  # render-tracking, render-tracks
    "das_core.commands.image",  # camera-move, image-scene
    "das_core.commands.shots",  # interpolate
    "das_core.commands.model",  # infer, tiny-model
    "das_core.commands.server",  # generate, fetch, status, keygen
    "das_core.commands.scenes",  # export, batch, demo
    "das_core.commands.train",  # train, dataset
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="das",
        description="Diffusion as Shader: turn animated 3D scenes into video with a 3D-aware video model.",
    )
    parser.add_argument("--version", action="version", version=f"das {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DasError as error:
        print(f"das {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"das {args.command}: interrupted", file=sys.stderr)
        return 130
