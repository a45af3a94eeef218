"""Depth requests: a monocular depth model in its own thread, beside the job worker.

`DepthService` answers `depth` requests in arrival order without waiting behind a generation. The
model (any transformers depth-estimation model id or folder, `--depth-model`) loads on the first
request, so a server that is never asked for depth never loads it. Answers go to `replies` (a
`queue.Queue`) and a nudge on the server's inproc wake socket, as the worker's events do: only the
server thread touches the ROUTER socket.

What a model outputs differs: metric models (ZoeDepth, Depth Pro, Depth Anything's metric
checkpoints) give depth in metres and are passed through. The others (Depth Anything's relative
checkpoints, DPT/MiDaS) give relative inverse depth, known only up to scale and shift; it becomes
depth by normalising it to [0, 1] and taking 1 / (`DISPARITY_FLOOR` + that), so the farthest pixel
is at most 11 times as far as the nearest, and the reply says `metric: false`.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from das_core.errors import DasError
from das_core.wire.protocol import DepthRequest, DepthResult, ErrorReply, ProtocolError

logger = logging.getLogger(__name__)

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"  # Apache-2.0
DISPARITY_FLOOR = 0.1
MAX_PENDING = 8  # depth requests waiting at most; more are refused with `depth_busy`
_METRIC_MODEL_TYPES = ("zoedepth", "depth_pro", "glpn")


@dataclass(frozen=True)
class DepthReply:
    """An answer for the server thread to send: to `identity`, answering request `req`."""

    identity: bytes
    req: int | None
    message: DepthResult | ErrorReply


class DepthEstimator:
    """A transformers depth-estimation model and its image processor, loaded on first use."""

    def __init__(self, model: str, device: str | None = None) -> None:
        self.model_name = model
        self.device = device
        self._loaded: tuple[Any, Any, str] | None = None

    def estimate(self, image: np.ndarray) -> DepthResult:
        """The depth of a uint8 [H, W, 3] image at its own size."""
        import torch

        processor, model, device = self._load()
        height, width = image.shape[:2]
        inputs = processor(images=image, return_tensors="pt").to(device)
        with torch.inference_mode():
            outputs = model(**inputs)
        result = processor.post_process_depth_estimation(outputs, target_sizes=[(height, width)])[0]
        predicted = result["predicted_depth"].float().cpu().numpy().reshape(height, width)
        fov = result.get("field_of_view")
        metric = is_metric(model.config)
        depth = predicted if metric else depth_from_disparity(predicted)
        return DepthResult(
            depth=depth.astype(np.float32),
            model=self.model_name,
            metric=metric,
            fov_deg=None if fov is None else float(fov),
        )

    def _load(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            try:
                import torch
                from transformers import AutoImageProcessor, AutoModelForDepthEstimation
            except ImportError as error:
                raise DasError(
                    f"depth needs torch and transformers on the server ({error}); "
                    'install them with `pip install torch && pip install -e ".[model]"`'
                ) from None
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            logger.info("loading the depth model %s on %s ...", self.model_name, device)
            try:
                processor = AutoImageProcessor.from_pretrained(self.model_name)
                model = AutoModelForDepthEstimation.from_pretrained(self.model_name).to(device).eval()
            except (OSError, ValueError) as error:
                raise DasError(
                    f"cannot load the depth model {self.model_name!r} ({str(error).splitlines()[0][:200]}); "
                    "give --depth-model a transformers depth-estimation model id or folder"
                ) from None
            self._loaded = (processor, model, device)
        return self._loaded


def is_metric(config: Any) -> bool:
    """Whether a model's output is metric depth (else relative inverse depth)."""
    return config.model_type in _METRIC_MODEL_TYPES or getattr(config, "depth_estimation_type", None) == "metric"


def depth_from_disparity(disparity: np.ndarray) -> np.ndarray:
    """Relative inverse depth to depth up to scale: 1 / (DISPARITY_FLOOR + disparity normalised to [0, 1])."""
    low, high = float(np.min(disparity)), float(np.max(disparity))
    normalised = (disparity - low) / (high - low) if high > low else np.zeros_like(disparity)
    return 1.0 / (DISPARITY_FLOOR + normalised)


class DepthService(threading.Thread):
    """Runs depth requests one at a time; `submit` never blocks the server thread."""

    def __init__(self, context: zmq.Context, wake_address: str, estimator: DepthEstimator) -> None:
        super().__init__(name="das-depth", daemon=True)
        self.context = context
        self.wake_address = wake_address
        self.estimator = estimator
        self.replies: queue.Queue[DepthReply] = queue.Queue()
        self._requests: queue.Queue[tuple[bytes, int | None, DepthRequest] | None] = queue.Queue(MAX_PENDING)

    def submit(self, identity: bytes, request: DepthRequest, req: int | None) -> bool:
        """Queue a request; False when `MAX_PENDING` are already waiting."""
        try:
            self._requests.put_nowait((identity, req, request))
        except queue.Full:
            return False
        return True

    def shutdown(self) -> None:
        """Finish the request in hand and stop (requests still queued are dropped)."""
        while True:
            try:
                self._requests.get_nowait()
            except queue.Empty:
                break
        self._requests.put(None)

    def run(self) -> None:
        wake = self.context.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self.wake_address)
        try:
            while (item := self._requests.get()) is not None:
                identity, req, request = item
                self.replies.put(DepthReply(identity, req, self._answer(request)))
                try:
                    wake.send(b"d", zmq.NOBLOCK)
                except zmq.Again:  # the server is already awake with nudges to read
                    pass
        finally:
            wake.close()

    def _answer(self, request: DepthRequest) -> DepthResult | ErrorReply:
        try:
            image = request.image.decode()
            return self.estimator.estimate(image)
        except ProtocolError as error:
            return ErrorReply(error.code, f"the depth request's image: {error}")
        except DasError as error:
            return ErrorReply("depth_unavailable", str(error))
        except Exception as error:  # a model failure costs one reply, never the thread
            logger.exception("depth estimation failed")
            return ErrorReply("depth_failed", f"the depth model failed on this image: {error}")
