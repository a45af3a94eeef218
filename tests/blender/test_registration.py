"""register() and unregister() are symmetric and can run again (Blender does both on enable/disable/reload)."""

import bpy

import blender_addon


def test_register_unregister_register():
    for _ in range(2):
        blender_addon.register()
        assert (
            hasattr(bpy.types.Scene, "das")
            and hasattr(bpy.types, "VIEW3D_PT_das")
            and hasattr(bpy.types, "SEQUENCER_PT_das")
            and hasattr(bpy.types, "DAS_OT_generate")  # `hasattr(bpy.ops.das, ...)` would be true regardless
        )
        assert bpy.context.scene.das.steps == 50 and bpy.context.scene.das.guidance == 6.0
        assert bpy.ops.das.generate.poll()  # the factory scene has a camera
        blender_addon.unregister()
        assert not hasattr(bpy.types.Scene, "das") and not hasattr(bpy.types, "VIEW3D_PT_das")
        assert not hasattr(bpy.types, "DAS_OT_generate") and dir(bpy.ops.das) == []
