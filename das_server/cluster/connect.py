"""Reaching the Ray cluster and planning the pool: how many workers, with which resources."""

from __future__ import annotations

import importlib
import logging
import socket
from dataclasses import dataclass

from das_core.errors import DasError

INSTALL_HINT = 'install it with `pip install "das[cluster]"` (or `pip install "ray[default]"`)'
LOCAL = "local"  # `--ray` without an address: start a Ray instance on this machine


@dataclass(frozen=True)
class ClusterConfig:
    """`--ray`, `--workers` and `--gpus-per-worker`."""

    address: str = LOCAL  # local, auto, or a cluster's address (host:6379, ray://host:10001)
    workers: int | None = None  # None: one per `gpus_per_worker` GPUs for a GPU backend, else one
    gpus_per_worker: float = 1.0


def require_ray() -> None:
    """Raise a `DasError` naming the install command when ray cannot be imported."""
    try:
        importlib.import_module("ray")
    except ImportError as error:
        raise DasError(f"--ray needs Ray, which is not installed here ({error}); {INSTALL_HINT}") from None


def connect(address: str) -> bool:
    """Join (or, for `local`, start) the Ray cluster; False if this process was connected already."""
    require_ray()
    import ray

    if ray.is_initialized():
        return False
    local = address == LOCAL
    if not local and address != "auto":
        _probe(address)
    try:
        ray.init(
            address=None if local else address,
            namespace="das",
            include_dashboard=False if local else None,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise DasError(
            f"cannot reach the Ray cluster at {address!r} ({error}); start it with `ray start --head` "
            "or pass --ray alone to start one on this machine"
        ) from None
    return True


def _probe(address: str) -> None:
    """Fail in seconds when nothing listens at a HOST:PORT address (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise DasError(f"--ray {address}: give the head's HOST:PORT (e.g. 10.0.0.5:6379), `auto`, or nothing")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise DasError(
            f"no Ray cluster answers at {address} ({error}); start its head with `ray start --head` "
            "or pass --ray alone to start one on this machine"
        ) from None


def uses_gpus(backend: str, device: str | None) -> bool:
    """Whether each worker holds GPUs: the das backend, unless told to run on the CPU."""
    return backend == "das" and (device is None or device.startswith("cuda"))


def planned_workers(cluster: ClusterConfig, gpu_backend: bool) -> int:
    """Workers to keep: `--workers`, else as many as the cluster's GPUs allow (one for a CPU backend)."""
    if cluster.workers is not None:
        return cluster.workers
    if not gpu_backend:
        return 1
    import ray

    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    return int(gpus // cluster.gpus_per_worker + 1e-9)
