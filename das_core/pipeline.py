"""Old import path, kept because 0.1's README used it: `from das_core.pipeline import load_pipeline`.

Use `das_core.model` (or `das_core.model.pipeline`) instead; this module goes in 0.3.
"""

from das_core.model.loading import load_pipeline
from das_core.model.pipeline import DEFAULT_NEGATIVE_PROMPT, DasImageToVideoPipeline

__all__ = ["DEFAULT_NEGATIVE_PROMPT", "DasImageToVideoPipeline", "load_pipeline"]
