"""Real Blender (the bpy 5.0.1 module), headless: every test starts from factory settings."""

import pytest

bpy = pytest.importorskip("bpy")


@pytest.fixture(autouse=True)
def factory_scene():
    """A clean factory-settings file for each test, so no test sees another's objects or settings."""
    bpy.ops.wm.read_homefile(use_factory_startup=True, app_template="")
    yield bpy.context.scene


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath):
            item.add_marker(pytest.mark.blender)
