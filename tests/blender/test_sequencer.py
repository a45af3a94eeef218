"""Strips in the VSE: retiming, free channels, the preview operator, saving and rendering the result."""

from types import SimpleNamespace

import bpy
import numpy as np

from blender_addon import sequencer
from blender_scenes import build_test_scene


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
    strips = sequencer.strip_collection(factory_scene)
    strips.new_effect("a", "COLOR", channel=1, frame_start=1, length=10)
    strips.new_effect("b", "COLOR", channel=3, frame_start=15, length=10)
    strips.new_effect("c", "COLOR", channel=2, frame_start=50, length=10)
    assert sequencer.free_channel(factory_scene, 1, 20) == 2  # "c" on channel 2 starts after frame 20
    assert sequencer.free_channel(factory_scene, 1, 20, height=2) == 4  # 2 is free but 3 is not
    assert sequencer.free_channel(factory_scene, 11, 20) == 1  # strip "a" ends before frame 11


def test_strip_collection_falls_back_to_sequences_for_blender_4():
    # Blender 4.2 cannot run here; an object with only `sequences` stands in for its sequence editor.
    editor = SimpleNamespace(sequences="the 4.2 collection")
    scene = SimpleNamespace(sequence_editor=editor)
    assert sequencer.strip_collection(scene) == "the 4.2 collection"


def test_preview_tracking_adds_a_strip_without_a_server(factory_scene, addon, tmp_path):
    scene = factory_scene
    build_test_scene(scene, frame_start=5, frame_end=30)
    scene.das.output_dir = str(tmp_path)

    assert bpy.ops.das.preview_tracking(wait=True) == {"FINISHED"}

    (strip,) = scene.sequence_editor.strips
    assert (strip.frame_final_start, strip.frame_final_end, strip.channel) == (5, 31, 1)
    assert strip.name.startswith("tracking [")
    files = sorted(tmp_path.glob("preview-*/tracking/frame_*.png"))
    assert len(files) == 49

    # The strip survives saving (paths become relative) and renders through the sequencer.
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    (strip,) = scene.sequence_editor.strips
    assert strip.directory.startswith("//")
    scene.render.filepath = str(tmp_path / "vse.png")
    scene.render.image_settings.file_format = "PNG"
    scene.frame_set(5)
    bpy.ops.render.render(write_still=True)
    from blender_addon.reference_render import load_image_rgb

    rendered = load_image_rgb(tmp_path / "vse.png")
    assert rendered.shape == (scene.render.resolution_y * scene.render.resolution_percentage // 100, scene.render.resolution_x * scene.render.resolution_percentage // 100, 3)
    assert rendered.max() > 50, "the sequencer rendered the tracking frames, not black"
