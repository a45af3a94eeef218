"""The `tiny` backend: a model engineer's tiny pipeline on CPU, for tests and demos.

`--model das` (the default) runs the tiny DaS pipeline, `--model wan-move` the tiny Wan-Move one: the
real pipeline code (real diffusers classes at tiny sizes), told by `info` to clients as the real
model's window so they prepare jobs exactly as for it; the backend fits them to its tiny size and
scales results back to the request's size. Its pictures are noise-like: the weights are random.
"""

from __future__ import annotations

from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW, ModelWindow
from das_server.backends.das import DasPipelineBackend
from das_server.backends.wan_move import WanMovePipelineBackend

TINY_MODELS = ("das", "wan-move")


class TinyBackend(DasPipelineBackend):
    """The tiny DaS pipeline from `das_core.model.tiny`, seeded, on CPU."""

    name = "tiny"

    def __init__(self) -> None:
        from das_core.model.tiny import TINY_HEIGHT, TINY_NUM_FRAMES, TINY_WIDTH, build_tiny_pipeline

        pipe = build_tiny_pipeline(seed=0)
        model_window = ModelWindow(TINY_WIDTH, TINY_HEIGHT, TINY_NUM_FRAMES, DAS_WINDOW.fps)
        super().__init__(
            pipe, window=DAS_WINDOW, model_window=model_window, model="tiny (random weights)", device="cpu"
        )


class TinyWanMoveBackend(WanMovePipelineBackend):
    """The tiny Wan-Move pipeline from `das_core.model.wan_move.tiny`, seeded, on CPU, all 81 frames."""

    name = "tiny"

    def __init__(self) -> None:
        from das_core.model.wan_move.tiny import TINY_HEIGHT, TINY_WIDTH, build_tiny_pipeline

        model_window = ModelWindow(
            TINY_WIDTH, TINY_HEIGHT, WAN_MOVE_WINDOW.frames, WAN_MOVE_WINDOW.fps, WAN_MOVE_WINDOW.control
        )
        super().__init__(
            build_tiny_pipeline(seed=0),
            window=WAN_MOVE_WINDOW,
            model_window=model_window,
            model="tiny wan-move (random weights)",
            device="cpu",
        )
