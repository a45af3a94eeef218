"""The `das` backend: the DaS pipeline (CogVideoX-5B-I2V + tracking branch) kept warm on a GPU.

`PipelineBackend` runs a diffusers pipeline: it drives progress and cancel through
`callback_on_step_end` (setting `pipe._interrupt`), scales the results back to the request's size and
returns as many as the control has frames (a shorter control is padded, see `framing`);
`DasPipelineBackend` fits the request to a `DasImageToVideoPipeline`'s size. `DasBackend` loads the
published weights; without a GPU or without the weights it refuses at server start and names
`--backend preview`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from das_core.errors import DasError
from das_core.model.pipeline import DEFAULT_NEGATIVE_PROMPT
from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_core.wire.protocol import JobRequest
from das_server.backends import BackendUnavailable
from das_server.backends.framing import from_model_size, to_model_size, to_uint8

_WEIGHTS_HINT = (
    "download the weights (about 25 GB) with `hf download EXCAI/Diffusion-As-Shader --local-dir DaS` "
    "and pass --model DaS, or run `python -m das_server --backend preview` for a CPU preview"
)


class PipelineBackend:
    """Runs a loaded pipeline in `model_window` (the size and length it runs at) for jobs prepared for
    `window` (what `info` tells clients); subclasses say how the pipeline is called."""

    name = "pipeline"

    def __init__(
        self, pipe: Any, *, window: ModelWindow, model: str, device: str, model_window: ModelWindow | None = None
    ) -> None:
        self.pipe = pipe
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)  # the server reports progress to clients instead
        self.window = window
        self.model_window = model_window or window
        self.model = model
        self.device = device

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model": self.model,
            "device": self.device,
            "preview": False,
            "model_size": list(self.model_window.size),
        }

    def generate(self, request: JobRequest, control) -> Iterator[np.ndarray]:
        steps = int(request.steps)
        control.progress("denoise", 0, steps)

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
            control.progress("denoise", step + 1, steps)
            if control.should_stop():
                pipe._interrupt = True
            return {}

        output, (out_width, out_height) = self.run_pipe(request, steps, on_step_end)
        if getattr(output, "interrupted", False) or output.frames is None or control.should_stop():
            return
        control.progress("decode", 1, 1)
        own = output.frames[0][: request.control_frames]  # a shorter control's frames; the rest held its last
        yield from from_model_size(to_uint8(own), out_width, out_height)

    def run_pipe(self, request: JobRequest, steps: int, on_step_end: Callable) -> tuple[Any, tuple[int, int]]:
        """Call the pipeline for `request` (output_type "np"): its output and the (width, height) to return."""
        raise NotImplementedError


class DasPipelineBackend(PipelineBackend):
    """A `DasImageToVideoPipeline`: the image and tracking video fitted to its size and length."""

    def run_pipe(self, request: JobRequest, steps: int, on_step_end: Callable) -> tuple[Any, tuple[int, int]]:
        tracking = request.tracking_video()
        out_height, out_width = tracking.shape[1:3]
        window = self.model_window
        image, tracking = to_model_size(request.image, tracking, *window.size, window.frames)
        output = self.pipe(
            image=image,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or DEFAULT_NEGATIVE_PROMPT,
            tracking_video=tracking,
            num_frames=window.frames,
            height=window.height,
            width=window.width,
            num_inference_steps=steps,
            guidance_scale=float(request.guidance),
            generator=torch.Generator(device="cpu").manual_seed(int(request.seed)),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        return output, (out_width, out_height)


class DasBackend(DasPipelineBackend):
    """The published DaS model on a CUDA GPU."""

    name = "das"

    def __init__(self, *, model: str, device: str | None, offload: str) -> None:
        device = device or "cuda"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"the das backend needs a CUDA GPU and none is visible; {_WEIGHTS_HINT}")
        from das_core.model.loading import load_pipeline

        try:
            pipe = load_pipeline(model=model, device=device, dtype=torch.bfloat16, offload=offload)
        except (DasError, OSError, ValueError) as error:
            raise BackendUnavailable(f"cannot load the DaS weights from {model!r} ({error}); {_WEIGHTS_HINT}") from None
        super().__init__(pipe, window=DAS_WINDOW, model=model, device=device)
