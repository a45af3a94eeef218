"""Real Blender (the bpy module), headless: every test starts from factory settings.

The project's venv has bpy 5.0.1; the same tests pass on every Blender release PyPI has as `bpy`
(4.2.23 LTS, 4.3.0, 4.4.0, 4.5.15 LTS and 5.0.1 on Python 3.11 with numpy 1.26; 5.1.2, 5.2.3 LTS and
5.3.0 on Python 3.13), each in its own venv: see tests/benchmarks/RESULTS.md. Version differences are
asserted per `bpy.app.version`, never skipped.
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
