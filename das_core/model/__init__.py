"""The DaS model (torch + diffusers): the tracking transformer, the pipeline, loading, tiny test models.

Blender never imports this package. `load_pipeline` builds a `DasImageToVideoPipeline` from the
published checkpoint or a folder laid out like it.
"""

from das_core.model.loading import load_pipeline
from das_core.model.transformer import REFERENCE_CLASS_NAME, DasTransformer3DModel

__all__ = ["REFERENCE_CLASS_NAME", "DasTransformer3DModel", "load_pipeline"]
