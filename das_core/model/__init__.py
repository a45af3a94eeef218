"""The DaS model side (torch + diffusers): tracking transformer and tiny test configs.

Blender never imports this package; `das_core.pipeline` builds the pipeline on top of it.
"""

from das_core.model.transformer import REFERENCE_CLASS_NAME, DasTransformer3DModel

__all__ = ["REFERENCE_CLASS_NAME", "DasTransformer3DModel"]
