"""das core: the torch-free library shared by the Blender add-on, the server and the CLI.

Torch-free modules (importable inside Blender): tracks, camera, render, video, protocol, client.
The model (`das_core.model`, `das_core.model.pipeline`) and training (`das_core.train`) import torch.
"""

__version__ = "0.1.0"
