"""`python -m das_server`: parse the command line, load the backend, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from das_core.errors import DasError
from das_core.wire.protocol import Limits
from das_server.cluster.connect import LOCAL, ClusterConfig
from das_server.config import BACKENDS, DEFAULT_BIND, DEFAULT_MODEL, ServerConfig
from das_server.depth import DEFAULT_DEPTH_MODEL

if TYPE_CHECKING:
    from das_server.server import Server

logger = logging.getLogger("das_server")  # not __name__: run with -m, this module is "__main__"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DESCRIPTION = (
    "Serve DaS or Wan-Move video generation over ZeroMQ: one warm model, a persistent job queue, "
    "progress and frames streamed to clients (`das generate`, the Blender add-on). "
    "With --ray, a pool of warm workers on a Ray cluster: one per GPU, on any number of machines."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m das_server", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options; `das serve` shares them."""
    _model_arguments(parser)
    _service_arguments(parser)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """Which model the server runs, on what, and how it fits in memory."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        metavar="{das,preview,tiny}",  # and sleep, a simulated GPU for tests and benchmarks
        default="das",
        help="das: the DaS model on a GPU; wan-move: Wan-Move (point tracks) on a GPU; preview: CPU warp of "
        "the reference image, no model; tiny: a tiny random model for tests (default: das)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"hub id or folder of the weights (default: {DEFAULT_MODEL} for das, Ruihang/Wan-Move-14B-480P for "
        "wan-move); with --backend tiny: das (default) or wan-move",
    )
    parser.add_argument(
        "--depth-model",
        default=DEFAULT_DEPTH_MODEL,
        help="transformers depth-estimation model id or folder for depth requests, loaded on the first one "
        f"(default: {DEFAULT_DEPTH_MODEL}, Apache-2.0)",
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="wan-move: hub id or folder of the diffusers Wan 2.1 I2V base "
        "(default: Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)",
    )
    parser.add_argument("--fp8", action="store_true", help="wan-move: store the DiT's weights as float8 (24 GB cards)")
    parser.add_argument("--device", default=None, help="torch device for the das backend (default: cuda)")
    parser.add_argument(
        "--offload",
        choices=("none", "model", "sequential", "group"),
        default="none",
        help="CPU offload for GPUs with less memory: das takes model (about 24 GB is enough) or sequential, "
        "wan-move model (with --fp8, 24 GB) or group (blocks streamed, slowest)",
    )


def _service_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the server listens, what it keeps, what it accepts and what it logs."""
    parser.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ address to listen on (default: {DEFAULT_BIND})")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("das-server-state"),
        help="folder for the job database and media (default: ./das-server-state)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        default=None,
        metavar="ADDRESS",
        help="run jobs on a pool of warm workers on a Ray cluster: `auto` (this machine's cluster), the "
        'head\'s HOST:6379, or nothing to start Ray here; needs `pip install "das[cluster]"`',
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="with --ray: workers to keep (default: one per GPU in the cluster for --backend das, else 1)",
    )
    parser.add_argument(
        "--gpus-per-worker", type=float, default=1.0, help="with --ray: GPUs each das worker holds (default: 1)"
    )
    parser.add_argument("--max-queue", type=int, default=64, help="jobs queued or running at most (default: 64)")
    parser.add_argument(
        "--max-queue-per-client", type=int, default=16, help="jobs one client may have queued or running (default: 16)"
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="control frames per job at most (default: the backend's frames, 49 for das, 81 for wan-move)",
    )
    parser.add_argument(
        "--max-windows",
        type=int,
        default=Limits.max_windows,
        help="windows per job at most: a shot longer than one window runs as consecutive windows sharing a frame "
        f"(default: {Limits.max_windows})",
    )
    parser.add_argument("--max-steps", type=int, default=200, help="denoising steps per job at most (default: 200)")
    parser.add_argument(
        "--result-codec",
        choices=("raw", "png", "zlib"),
        default="raw",
        help="how result frames travel and are stored: raw (default, no CPU cost; 50 MB per "
        "job) or png (lossless, smaller, about 30 ms of CPU per 720x480 frame)",
    )
    parser.add_argument("--retention-days", type=float, default=7.0, help="keep finished jobs this long (default: 7)")
    parser.add_argument(
        "--retention-gb",
        type=float,
        default=20.0,
        help="and at most this much media on disk, oldest removed first (default: 20)",
    )
    parser.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="folder from `das keygen`: enables CURVE encryption and the client allow-list",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --bind without --keys (anyone who can reach it can use it)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="log to stderr from this level on: DEBUG adds every request (default: INFO)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    from das_server.backends import backend_window

    for name in ("max_queue", "max_queue_per_client", "max_frames", "max_windows", "max_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise DasError(f"--{name.replace('_', '-')} must be at least 1")
    max_frames = args.max_frames or backend_window(args.backend, args.model).frames
    limits = Limits(max_frames=max_frames, max_windows=args.max_windows, max_steps=args.max_steps)
    if limits.max_control_frames > limits.max_header_list_len:  # a submit lists its tracking frames in the header
        raise DasError(
            f"--max-frames {max_frames} times --max-windows {args.max_windows} is {limits.max_control_frames} "
            f"frames a job; the protocol lists at most {limits.max_header_list_len}: lower one of them"
        )
    return ServerConfig(
        state_dir=args.state_dir,
        backend=args.backend,
        model=args.model,
        base_model=args.base_model,
        fp8=args.fp8,
        bind=args.bind,
        device=args.device,
        offload=args.offload,
        max_queue=args.max_queue,
        max_queue_per_client=args.max_queue_per_client,
        limits=limits,
        result_codec=args.result_codec,
        retention_days=args.retention_days,
        retention_gb=args.retention_gb,
        keys_dir=args.keys,
        insecure=args.insecure,
        depth_model=args.depth_model,
    )


def cluster_from_args(args: argparse.Namespace) -> ClusterConfig | None:
    """The pool's settings with --ray, else None (after refusing --workers or --gpus-per-worker alone)."""
    if args.ray is None:
        if args.workers is not None or args.gpus_per_worker != 1.0:
            raise DasError("--workers and --gpus-per-worker set up a pool of workers; add --ray [ADDRESS]")
        return None
    if args.workers is not None and args.workers < 1:
        raise DasError("--workers must be at least 1")
    if not args.gpus_per_worker > 0:
        raise DasError("--gpus-per-worker must be more than 0 (a fraction shares a GPU between workers)")
    return ClusterConfig(args.ray, args.workers, args.gpus_per_worker)


def main(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Load the backend and serve until SIGINT/SIGTERM; 2 with one logged line if it cannot start."""
    with logging_to_stderr(args.log_level):
        try:
            from das_core.wire.keys import check_bind
            from das_server.backends import load_backend
            from das_server.server import Server

            config = config_from_args(args)
            cluster = cluster_from_args(args)
            check_bind(config.bind, config.keys_dir, config.insecure)  # before minutes of loading
            if cluster is not None:
                serve_pool(config, cluster)
            else:
                logger.info("loading the %s backend ...", config.backend)
                backend = load_backend(
                    config.backend,
                    model=config.model,
                    device=config.device,
                    offload=config.offload,
                    base_model=config.base_model,
                    fp8=config.fp8,
                )
                run_until_signal(Server(config, backend))
        except DasError as error:
            logger.error("%s", error)
            return 2
        logger.info("stopped")
        return 0


def serve_pool(config: ServerConfig, cluster: ClusterConfig) -> None:
    """Serve with a pool of workers on the Ray cluster at `cluster.address`."""
    from das_server.cluster.connect import require_ray

    require_ray()
    from das_server.cluster.pool import Pool
    from das_server.server import Server

    pool = Pool(config, cluster)
    try:
        count = len(pool.slots)
        logger.info("starting %d worker%s of the %s backend on Ray ...", count, "s"[: count - 1], config.backend)
        pool.load()
        run_until_signal(Server(config, runner=pool.attach))
    finally:
        pool.close()


def run_until_signal(server: Server) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.stop())
    server.run()


@contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """While the server runs, das_server's records at `level` and above go to stderr.

    The handler sits on the `das_server` logger and is removed afterwards, so `das serve` run inside
    another process (a test) leaves the root logger's configuration alone.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    package = logging.getLogger("das_server")
    package.addHandler(handler)
    package.setLevel(level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(logging.NOTSET)


if __name__ == "__main__":
    sys.exit(main())
