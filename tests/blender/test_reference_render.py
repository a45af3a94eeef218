"""The reference image: rendered at the tracking video's framing, settings restored, read back without imageio."""

import bpy
import imageio.v3 as iio
import numpy as np
import pytest
from blender_scenes import build_test_scene

from blender_addon.export import export_tracks
from blender_addon.reference_render import load_image_rgb, render_reference
from das_core.errors import DasError


def test_workbench_reference_at_first_frame_and_tracks_size(factory_scene, tmp_path):
    scene = factory_scene
    build_test_scene(scene, frame_start=1, frame_end=24)
    scene.frame_set(10)
    scene.render.filepath = "//keep/"
    engine = scene.render.engine
    tracks = export_tracks(scene, samples=3)

    path = render_reference(scene, tmp_path / "ref.png", frame=int(tracks.frame_numbers[0]), engine="WORKBENCH")

    image = load_image_rgb(path)
    assert image.shape == (tracks.height, tracks.width, 3)
    np.testing.assert_array_equal(image, iio.imread(path)[:, :, :3])  # Blender's loader reads it top row first
    assert image.std() > 5, "the render shows the scene, not a blank image"
    assert (scene.frame_current, scene.render.engine, scene.render.filepath) == (10, engine, "//keep/")


def test_unknown_engine_and_missing_image_are_clear_errors(factory_scene, tmp_path):
    with pytest.raises(DasError, match="render engine 'NOPE' is not available"):
        render_reference(factory_scene, tmp_path / "ref.png", frame=1, engine="NOPE")
    with pytest.raises(DasError, match="does not exist"):
        load_image_rgb(tmp_path / "missing.png")


def test_smaller_percentage_keeps_the_framing(factory_scene, tmp_path):
    from blender_addon.reference_render import percentage_for

    scene = factory_scene
    build_test_scene(scene)
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1920, 1080, 100
    assert percentage_for(scene, 720, 480) == 38  # 729 x 410 still covers the 720 x 405 letterbox
    scene.render.resolution_percentage = 20
    assert percentage_for(scene, 720, 480) == 20  # never larger than the artist's own setting

    scene.render.resolution_percentage = 100
    full = load_image_rgb(render_reference(scene, tmp_path / "full.png", frame=1, engine="WORKBENCH"))
    small = load_image_rgb(
        render_reference(scene, tmp_path / "small.png", frame=1, engine="WORKBENCH", resolution_percentage=25)
    )
    assert small.shape == (270, 480, 3) and scene.render.resolution_percentage == 100
    # Same framing: the full render shrunk to the small size matches it closely.
    from PIL import Image

    shrunk = np.asarray(Image.fromarray(full).resize((480, 270), Image.Resampling.BOX)).astype(int)
    assert np.abs(shrunk - small.astype(int)).mean() < 2  # 0.5 measured; a 10 px shift gives 3.9


def test_engine_short_names_resolve_to_this_blenders_ids(factory_scene):
    from blender_addon.reference_render import _engine_id

    render = factory_scene.render
    render.engine = "CYCLES"
    # Blender 5.0 renamed BLENDER_EEVEE_NEXT (4.2 LTS through 4.5) to BLENDER_EEVEE; probing finds either.
    assert _engine_id(render, "EEVEE") == ("BLENDER_EEVEE" if bpy.app.version >= (5, 0) else "BLENDER_EEVEE_NEXT")
    assert _engine_id(render, "WORKBENCH") == "BLENDER_WORKBENCH"
    assert render.engine == "CYCLES", "probing must not change the scene's engine"
