"""Strips in the VSE: retiming, free channels, the preview operator, saving and rendering the result."""

import bpy
import numpy as np
from blender_scenes import add_color_strip, build_test_scene

from blender_addon import sequencer


def test_timeline_elements_follow_the_exported_frames():
    # 49 images over frames 1..97 sampled every 2 frames: frame f shows image (f - 1) / 2, held in between.
    source = list(range(1, 98, 2))
    elements = sequencer.timeline_elements(source, 49, 1, 97)
    assert len(elements) == 97
    assert elements[0] == 0 and elements[-1] == 48
    assert elements[2] == 1 and elements[1] == 0  # a tie between frames 1 and 3 goes to the earlier image
    # More images than timeline frames (a 10-frame shot): images are skipped, never reordered.
    short = sequencer.timeline_elements(list(range(5, 15)), 49, 5, 14)
    assert len(short) == 10 and np.all(np.diff(short) > 0)


def test_free_channel_skips_overlapping_strips_only(factory_scene):
    add_color_strip(factory_scene, "a", channel=1, frame_start=1, length=10)
    add_color_strip(factory_scene, "b", channel=3, frame_start=15, length=10)
    add_color_strip(factory_scene, "c", channel=2, frame_start=50, length=10)
    assert sequencer.free_channel(factory_scene, 1, 20) == 2  # "c" on channel 2 starts after frame 20
    assert sequencer.free_channel(factory_scene, 1, 20, height=2) == 4  # 2 is free but 3 is not
    assert sequencer.free_channel(factory_scene, 11, 20) == 1  # strip "a" ends before frame 11


def test_strip_collection_is_this_blenders_top_level_strips(factory_scene):
    # Blender 4.4 added `sequence_editor.strips` (deprecating `sequences`), 5.0 removed `sequences`;
    # runs on bpy 4.2.23 through 5.1+ (tests/benchmarks/RESULTS.md).
    factory_scene.sequence_editor_clear()
    strips = sequencer.strip_collection(factory_scene)
    editor = factory_scene.sequence_editor
    assert editor is not None, "the sequence editor is created on first use"
    expected = editor.strips if bpy.app.version >= (4, 4) else editor.sequences
    assert strips == expected and len(strips) == 0
    add_color_strip(factory_scene, "a", channel=1, frame_start=1, length=10)
    assert [strip.name for strip in sequencer.strip_collection(factory_scene)] == ["a"]


def test_preview_tracking_adds_a_strip_without_a_server(factory_scene, addon, tmp_path):
    scene = factory_scene
    build_test_scene(scene, frame_start=5, frame_end=30)
    scene.das.output_dir = str(tmp_path)

    assert bpy.ops.das.preview_tracking(wait=True) == {"FINISHED"}

    (strip,) = sequencer.strip_collection(scene)
    assert (*sequencer.strip_span(strip), strip.channel) == (5, 31, 1)
    assert strip.name.startswith("tracking [")
    files = sorted(tmp_path.glob("preview-*/tracking/frame_*.png"))
    assert len(files) == 49

    # The strip survives saving (paths become relative) and renders through the sequencer.
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    (strip,) = sequencer.strip_collection(scene)
    assert strip.directory.startswith("//")
    scene.render.filepath = str(tmp_path / "vse.png")
    scene.render.image_settings.file_format = "PNG"
    scene.frame_set(5)
    bpy.ops.render.render(write_still=True)
    from blender_addon.reference_render import load_image_rgb

    rendered = load_image_rgb(tmp_path / "vse.png")
    assert rendered.shape == (
        scene.render.resolution_y * scene.render.resolution_percentage // 100,
        scene.render.resolution_x * scene.render.resolution_percentage // 100,
        3,
    )
    assert rendered.max() > 50, "the sequencer rendered the tracking frames, not black"
