"""Server settings as one frozen dataclass, built from the command line by `__main__`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from das_core.wire.protocol import Limits
from das_server.depth import DEFAULT_DEPTH_MODEL

DEFAULT_MODEL = "EXCAI/Diffusion-As-Shader"
DEFAULT_BIND = "tcp://127.0.0.1:5555"
BACKENDS = ("das", "wan-move", "preview", "tiny", "sleep")  # sleep: a simulated GPU for tests and benchmarks


@dataclass(frozen=True)
class ServerConfig:
    """Everything `Server` needs; defaults are the safe ones (loopback, no keys needed)."""

    state_dir: Path
    backend: str = "das"
    model: str | None = None  # None: the backend's default (DEFAULT_MODEL for das)
    base_model: str | None = None  # wan-move: the diffusers Wan 2.1 I2V base (None: its default)
    fp8: bool = False  # wan-move: the DiT's weights stored as float8
    bind: str = DEFAULT_BIND
    device: str | None = None
    offload: str = "none"
    max_queue: int = 64
    max_queue_per_client: int = 16
    limits: Limits = field(default_factory=Limits)
    result_codec: str = "raw"  # raw costs no CPU; png saves about a third on slow links
    retention_days: float = 7.0
    retention_gb: float = 20.0
    keys_dir: Path | None = None  # from `das keygen`: server.key_secret + allowed_clients/*.key
    insecure: bool = False
    heartbeat_s: float = 2.0
    depth_model: str = DEFAULT_DEPTH_MODEL  # transformers depth-estimation model id or folder

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0

    @property
    def retention_bytes(self) -> int:
        return int(self.retention_gb * (1 << 30))
