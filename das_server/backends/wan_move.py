"""The `wan-move` backend: Wan-Move (Wan 2.1 I2V 14B following point tracks) kept warm on a GPU.

`WanMovePipelineBackend` runs any `WanMovePipeline`: the image is letterboxed to the model's size and
the tracks (pixels of the image) moved with it, the tracks are fitted to the model's frames (a shorter
control holds its last positions: `framing.model_frame_indices`), and progress, cancel, the return to
the request's size and to the control's frames are `PipelineBackend`'s. `WanMoveBackend` loads
the published DiT and the diffusers base; without them it refuses at server start and names the
download command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from das_core.errors import DasError
from das_core.tracking.video import fit_frames, fit_points, model_frame_indices
from das_core.tracking.window import WAN_MOVE_WINDOW
from das_core.wire.protocol import JobRequest
from das_server.backends import BackendUnavailable
from das_server.backends.das import PipelineBackend


class WanMovePipelineBackend(PipelineBackend):
    """A `WanMovePipeline` run on the job's image and point tracks, fitted to `model_window`."""

    def run_pipe(self, request: JobRequest, steps: int, on_step_end: Callable) -> tuple[Any, tuple[int, int]]:
        tracks, visibility = request.tracks_and_visibility()
        image = np.asarray(request.image)
        out_height, out_width = image.shape[:2]
        window = self.model_window
        chosen = model_frame_indices(len(tracks), window.frames)
        tracks, visibility = tracks[chosen], visibility[chosen]
        output = self.pipe(
            image=fit_frames(image, *window.size, resample="bilinear"),
            prompt=request.prompt,
            tracks=fit_points(tracks, (out_width, out_height), window.size),
            visibility=visibility,
            negative_prompt=request.negative_prompt,  # None or "": the reference's
            height=window.height,
            width=window.width,
            num_frames=window.frames,
            num_inference_steps=steps,
            guidance_scale=float(request.guidance),
            generator=torch.Generator(device=self.device).manual_seed(int(request.seed)),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        return output, (out_width, out_height)


class WanMoveBackend(WanMovePipelineBackend):
    """The published Wan-Move DiT with the diffusers Wan 2.1 I2V base, on a CUDA GPU (or `--device cpu`)."""

    name = "wan-move"

    def __init__(
        self, *, model: str | None, base_model: str | None, device: str | None, offload: str, fp8: bool
    ) -> None:
        """`model` and `base_model` None: the published DiT and the diffusers base (hub ids)."""
        from das_core.model.wan_move.loading import (
            DEFAULT_BASE_MODEL,
            DEFAULT_MODEL,
            DOWNLOAD_COMMAND,
            load_wan_move_pipeline,
            resolve_dit_folder,
        )

        model, base_model = model or DEFAULT_MODEL, base_model or DEFAULT_BASE_MODEL

        try:
            resolve_dit_folder(model)  # before the GPU check: missing weights are the first thing to fix
        except DasError as error:
            raise BackendUnavailable(str(error)) from None
        device = device or "cuda"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                "the wan-move backend needs a CUDA GPU and none is visible; pass --device cpu to run it (very "
                "slowly) on the CPU"
            )
        try:
            pipe = load_wan_move_pipeline(model, base_model, device=device, offload=offload, fp8=fp8)
        except (DasError, OSError, ValueError) as error:
            raise BackendUnavailable(
                f"cannot load Wan-Move from {model!r} ({error}); get the DiT with `{DOWNLOAD_COMMAND}`"
            ) from None
        super().__init__(pipe, window=WAN_MOVE_WINDOW, model=model, device=device)
