"""Strips in the VSE: retiming, free channels, the preview operator, saving and rendering the result."""

import bpy
import numpy as np
from blender_scenes import add_color_strip, build_test_scene

from blender_addon import sequencer


def test_timeline_elements_hold_each_key_until_the_next():
    # Keys every 3 timeline frames (24 fps scene, 8 fps model); frames after the last key show it.
    elements = sequencer.timeline_elements((0, 3, 6), 8)
    assert elements.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sequencer.timeline_elements(range(5), 5).tolist() == [0, 1, 2, 3, 4]  # a key at every frame


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
    assert len(files) == 9  # 26 frames at 24 fps: the model's frames at 8 fps are timeline frames 0, 3, ..., 24
    names = [element.filename for element in strip.elements]
    assert len(names) == 26 and names[:4] == ["frame_00000.png"] * 3 + ["frame_00001.png"]
    assert names[-3:] == ["frame_00007.png", "frame_00008.png", "frame_00008.png"]  # the last key held to the end

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


def test_preview_of_a_shot_longer_than_a_window_shows_every_window(factory_scene, addon, tmp_path):
    """60 frames at the model's 8 fps: 60 model frames, in two DaS windows that share frame 48, each
    tracking video coloured by its own first frame (`ShotControl.preview`)."""
    scene = factory_scene
    build_test_scene(scene, frame_start=1, frame_end=60)
    scene.render.fps, scene.render.fps_base = 8, 1.0
    scene.das.output_dir = str(tmp_path)

    assert bpy.ops.das.preview_tracking(wait=True) == {"FINISHED"}

    (strip,) = sequencer.strip_collection(scene)
    assert sequencer.strip_span(strip) == (1, 61)
    assert [element.filename for element in strip.elements] == [f"frame_{index:05d}.png" for index in range(60)]
    from das_core.tracking.shot import ShotControl, plan_shot
    from das_core.tracking.tracks import Tracks
    from das_core.tracking.video import read_video
    from das_core.tracking.window import DAS_WINDOW

    folder = next(tmp_path.glob("preview-*"))
    tracks = Tracks.load(folder / "tracks.npz")
    assert tracks.num_frames == 60  # every timeline frame exported
    plan = plan_shot(60, 8.0, DAS_WINDOW)
    assert plan.windows == ((0, 48), (48, 59))
    np.testing.assert_array_equal(
        read_video(folder / "tracking"), ShotControl.prepare(tracks, plan, DAS_WINDOW).preview()
    )
