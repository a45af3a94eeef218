"""Real Blender (the bpy module), headless: every test starts from factory settings.

The project's venv has bpy 5.0.1; the same tests pass on Blender 4.2 LTS with bpy==4.2.23 in a
separate venv (numpy 1.26, as Blender 4.2 ships). Version differences are asserted per
`bpy.app.version`, never skipped.
"""

import pytest

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon():
    """The add-on enabled the way Blender enables it (so its preferences exist), disabled afterwards."""
    import addon_utils  # importable once bpy is

    module = addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    assert module is not None and hasattr(bpy.types.Scene, "das")
    from blender_addon import jobs

    yield bpy.context.preferences.addons["blender_addon"].preferences
    jobs.JOBS.clear()  # threads still running post to the outbox; events of unknown jobs are dropped
    jobs.ERRORS.clear()
    addon_utils.disable("blender_addon", default_set=True)


@pytest.fixture(autouse=True)
def factory_scene():
    """A clean factory-settings file for each test, so no test sees another's objects or settings."""
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    yield bpy.context.scene


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath):
            item.add_marker(pytest.mark.blender)
