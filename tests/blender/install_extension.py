"""Run in a fresh Python with BLENDER_USER_RESOURCES pointing at a temp folder: install the built zip, enable it, preview.

Usage: python install_extension.py EXTENSION.zip REPO_DIR
Prints one JSON line describing what Blender loaded; exits non-zero on any failure. The project's
editable install is hidden first, so `das_core` can only come from the extension's bundled wheel.
"""

import json
import os
import sys

sys.meta_path[:] = [finder for finder in sys.meta_path if "editable" not in getattr(finder, "__module__", "")]
sys.path_hooks[:] = [hook for hook in sys.path_hooks if "editable" not in getattr(hook, "__module__", "")]
sys.path_importer_cache.clear()
assert "das_core" not in sys.modules

import bpy  # after hiding the editable install

# isort: split
import addon_utils  # importable once bpy is

zip_path, repo_dir = sys.argv[1], sys.argv[2]
bpy.ops.preferences.extension_repo_add(
    name="das_test", type="LOCAL", use_custom_directory=True, custom_directory=repo_dir
)
repo = next(repo for repo in bpy.context.preferences.extensions.repos if repo.name == "das_test")
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo=repo.module, enable_on_install=True)
module_name = f"bl_ext.{repo.module}.das"
enabled = module_name in bpy.context.preferences.addons
module = sys.modules.get(module_name)
addon = bpy.context.preferences.addons.get(module_name)

import das_core  # from the bundled das_blender_core wheel, installed by Blender

scene = bpy.context.scene
# The installed copy works, not only registers: the tracking preview runs the bundled renderer and
# adds its strip through the add-on's own sequencer shim (`strips` from 4.4, handles from 5.1).
scene.das.output_dir = os.path.join(os.path.dirname(os.path.abspath(repo_dir)), "cache")
preview = bpy.ops.das.preview_tracking(wait=True)
sequencer = sys.modules[f"{module_name}.sequencer"]
strips = sequencer.strip_collection(scene)
site_packages = os.path.dirname(os.path.dirname(das_core.__file__))
compiled = sorted(name for _, _, files in os.walk(site_packages) for name in files if name.endswith((".so", ".pyd")))
print(
    json.dumps(
        {
            "result": sorted(result),
            "enabled": enabled,
            "module_file": getattr(module, "__file__", None),
            "das_core_file": das_core.__file__,
            "compiled_modules": compiled,
            # Registered operator classes are RNA types; `hasattr(bpy.ops.das, name)` is true for any name.
            "operators": {
                name: hasattr(bpy.types, f"DAS_OT_{name}")
                for name in ("generate", "cancel", "preview_tracking", "reattach", "no_such_operator")
            },
            "scene_das": {
                name: name in scene.das.bl_rna.properties
                for name in ("server", "prompt", "negative_prompt", "seed", "steps", "guidance", "no_such_setting")
            },
            # Every enabled add-on has a `preferences` attribute; it is None unless its class registered.
            "preferences": type(getattr(addon, "preferences", None)).__name__,
            "preview": sorted(preview),
            "strips": [
                (strip.name.split(" ")[0], *sequencer.strip_span(strip), len(strip.elements)) for strip in strips
            ],
            "blender": bpy.app.version_string,
        }
    )
)
addon_utils.disable(module_name, default_set=True)
sys.exit(0 if enabled else 1)
