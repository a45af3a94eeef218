"""The `tiny` backend: the model engineer's tiny DaS pipeline on CPU, for tests and demos.

It runs the real pipeline code (real diffusers classes at tiny sizes) at `TINY_HEIGHT x TINY_WIDTH`
and scales results back to the request's size, so the server path is exercised end to end
without a GPU. Its pictures are noise-like: the weights are random.
"""

from __future__ import annotations

from das_core.tracking.window import DAS_WINDOW, ModelWindow
from das_server.backends.das import PipelineBackend


class TinyBackend(PipelineBackend):
    """The tiny pipeline from `das_core.model.tiny`, seeded, on CPU."""

    name = "tiny"

    def __init__(self) -> None:
        from das_core.model.tiny import TINY_HEIGHT, TINY_NUM_FRAMES, TINY_WIDTH, build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=0)
        window = ModelWindow(TINY_WIDTH, TINY_HEIGHT, TINY_NUM_FRAMES, DAS_WINDOW.fps)
        super().__init__(pipe, window=window, model="tiny (random weights)", device="cpu")
