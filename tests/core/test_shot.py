"""Whole shots (`das_core.tracking.shot`): model frames at the model's fps, windows that share a frame,
each window's control encoded from its own first frame, and the shot put back together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from das_core.tracking.render import render_tracking
from das_core.tracking.shot import FRAMES_MODEL, ShotControl, ShotError, plan_shot, scene_frames
from das_core.tracking.tracks import Tracks
from das_core.tracking.window import DAS_WINDOW, POINT_TRACKS, WAN_MOVE_WINDOW, ModelWindow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thrown_ball" / "tracks.npz"
SMALL = ModelWindow(width=90, height=60, frames=9, fps=8.0)  # a DaS-like window small enough for tests


@pytest.fixture(scope="module")
def tracks() -> Tracks:
    return Tracks.load(EXAMPLE)  # 49 timeline frames at 24 fps, a ball thrown past a box


def test_a_long_shot_is_sampled_at_the_model_fps_in_windows_sharing_a_frame() -> None:
    plan = plan_shot(240, 24.0, DAS_WINDOW)
    assert plan.keys == tuple(range(0, 240, 3))  # 8 fps in a 24 fps scene: every third frame
    assert plan.windows == ((0, 48), (48, 79))
    assert plan.window_lengths == (49, 32)
    wan = plan_shot(240, 24.0, WAN_MOVE_WINDOW)
    assert len(wan.keys) == 160 and wan.windows == ((0, 80), (80, 159))
    for earlier, later in zip(wan.windows, wan.windows[1:]):
        assert later[0] == earlier[1]


def test_keys_stay_within_half_a_frame_of_the_model_spacing() -> None:
    plan = plan_shot(250, 25.0, DAS_WINDOW)  # 3.125 timeline frames per model frame
    exact = np.arange(len(plan.keys)) * 25.0 / 8.0
    assert np.abs(np.array(plan.keys) - exact).max() <= 0.5
    assert len(set(plan.keys)) == len(plan.keys) and plan.keys[-1] <= 249


def test_a_scene_slower_than_the_model_gives_every_frame_to_it() -> None:
    plan = plan_shot(30, 12.0, WAN_MOVE_WINDOW)
    assert plan.keys == tuple(range(30)) and plan.windows == ((0, 29),)


def test_a_short_shot_is_one_window_of_its_own_frames() -> None:
    plan = plan_shot(72, 24.0, DAS_WINDOW)
    assert len(plan.keys) == 24 and plan.windows == ((0, 23),)


@pytest.mark.parametrize(
    ("frames", "fps", "match"), [(0, 24.0, "at least one"), (10, 0.0, "positive"), (2.5, 24.0, "at least one")]
)
def test_bad_shots_are_refused(frames, fps, match) -> None:
    with pytest.raises(ShotError, match=match):
        plan_shot(frames, fps, DAS_WINDOW)


def test_each_window_is_encoded_from_its_own_first_frame(tracks: Tracks) -> None:
    plan = plan_shot(tracks.num_frames, tracks.fps, SMALL)
    assert len(plan.windows) == 2
    control = ShotControl.prepare(tracks, plan, SMALL)
    fields = control.job_fields()
    assert fields["windows"] == (9, 9)
    video = fields["tracking"]
    assert video.shape == (18, 60, 90, 3)
    second = render_tracking(tracks.take(plan.window_keys(1)), "mesh", 9, fit=SMALL.size)
    np.testing.assert_array_equal(video[9:], second)
    # The shared frame shows the same scene frame in both windows, coloured from each window's start.
    assert not np.array_equal(video[8], video[9])
    assert control.preview().shape == (len(plan.keys), 60, 90, 3)


def test_one_window_sends_no_window_list(tracks: Tracks) -> None:
    window = ModelWindow(90, 60, 49, 8.0)
    fields = ShotControl.prepare(tracks, plan_shot(tracks.num_frames, tracks.fps, window), window).job_fields()
    assert fields["windows"] is None and len(fields["tracking"]) == 17


def test_point_tracks_are_padded_with_points_invisible_outside_their_window(tracks: Tracks) -> None:
    window = ModelWindow(90, 60, 9, 8.0, control=POINT_TRACKS)
    plan = plan_shot(tracks.num_frames, tracks.fps, window)
    control = ShotControl.prepare(tracks, plan, window)
    fields = control.job_fields()
    xy, visible = fields["point_tracks"], fields["visibility"]
    counts = [item.points.num_points for item in control.windows]
    assert xy.shape == (18, max(counts), 2) and visible.shape == (18, max(counts))
    for index, count in enumerate(counts):
        rows = slice(9 * index, 9 * index + 9)
        assert visible[rows][0, :count].all()  # chosen on the window's first frame, where they are seen
        assert not visible[rows][:, count:].any()


def test_scene_frames_keep_the_keys_and_fill_the_rest(tracks: Tracks) -> None:
    plan = plan_shot(tracks.num_frames, tracks.fps, SMALL)
    rng = np.random.default_rng(0)
    generated = rng.integers(0, 256, (len(plan.keys), 60, 90, 3), dtype=np.uint8)
    shot = list(scene_frames(tracks, plan, generated))
    assert len(shot) == tracks.num_frames
    for index, key in enumerate(plan.keys):
        np.testing.assert_array_equal(shot[key], generated[index])
    assert not any(np.array_equal(shot[1], frame) for frame in generated)  # made, not held
    held = list(scene_frames(tracks, plan, generated, FRAMES_MODEL))
    np.testing.assert_array_equal(held[4], generated[1])  # timeline frame 4 shows key 3 (model frame 1)
    with pytest.raises(ShotError, match="generated"):
        next(scene_frames(tracks, plan, generated[:-1]))
    with pytest.raises(ShotError, match="every or model"):
        next(scene_frames(tracks, plan, generated, "some"))


def test_take_picks_frames_and_refuses_others(tracks: Tracks) -> None:
    part = tracks.take([3, 6])
    np.testing.assert_array_equal(part.points, tracks.points[[3, 6]])
    assert list(part.frame_numbers) == [int(tracks.frame_numbers[3]), int(tracks.frame_numbers[6])]
    with pytest.raises(Exception, match="within 0..48"):
        tracks.take([49])
