"""Diffusion as Shader for Blender: export the animation, generate a video on a DaS server, get it in the sequencer.

Installed as a Blender extension (see `blender_manifest.toml`, built by `python -m blender_addon.build`)
or imported as the `blender_addon` package. bpy is imported only by the modules `register()` loads,
so `python -m blender_addon.build` runs without Blender.
"""

from __future__ import annotations

import importlib

# Registration order: properties before the operators and panels that use them.
_MODULES = ("properties", "operators", "image_operators", "panel")


def register() -> None:
    """Register every class of the add-on's modules, then the scene settings and the job timer."""
    for name in _MODULES:
        importlib.import_module(f".{name}", __name__).register()


def unregister() -> None:
    """Undo `register()` in reverse order."""
    for name in reversed(_MODULES):
        importlib.import_module(f".{name}", __name__).unregister()
