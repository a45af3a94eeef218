"""Old import path, kept because 0.1's README named `das_core.camera.blender_camera_to_opencv`.

Use `das_core.tracking.camera` instead; this module goes in 0.3.
"""

from das_core.tracking.camera import *  # noqa: F403
