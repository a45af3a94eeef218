"""Video IO on real files (real ffmpeg through imageio-ffmpeg, real PNG/JPG through PIL) and the aspect policy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from das_core.errors import DasError
from das_core.tracking.video import (
    VideoError,
    fit_frames,
    read_video,
    sample_indices,
    video_info,
    write_mp4,
    write_png_dir,
)


def _smooth_frames(count: int = 6, height: int = 48, width: int = 64) -> np.ndarray:
    """Moving gradients and a block: the kind of content H.264 keeps close to the original."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frames[t, ..., 0] = x * 200 // (width - 1) + 8 * t
        frames[t, ..., 1] = y * 255 // (height - 1)
        frames[t, ..., 2] = 128
        frames[t, 8:24, 8 + 4 * t : 24 + 4 * t] = (240, 30, 30)
    return frames


# --- PNG folders ------------------------------------------------------------------------------------


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (12, 21, 33, 3), dtype=np.uint8)
    paths = write_png_dir(tmp_path / "frames", frames)
    assert [path.name for path in paths[:2]] == ["frame_00000.png", "frame_00001.png"]
    np.testing.assert_array_equal(read_video(tmp_path / "frames"), frames)


def test_png_folder_rewrite_drops_frames_from_a_longer_run(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    write_png_dir(tmp_path, frames)
    write_png_dir(tmp_path, frames[:2])
    np.testing.assert_array_equal(read_video(tmp_path), frames[:2])


def test_folder_frames_are_sorted_naturally(tmp_path):
    for number in (10, 2, 1):
        Image.fromarray(np.full((4, 4, 3), number, dtype=np.uint8)).save(tmp_path / f"shot{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    assert read_video(tmp_path)[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_grayscale_rgba_16_bit_and_jpg_images_become_rgb(tmp_path):
    gray = np.arange(0, 240, 15, dtype=np.uint8).reshape(4, 4)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_video(tmp_path / "gray.png")[0], np.repeat(gray[..., None], 3, axis=2))

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = [[255, 0], [128, 64]]
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    # Alpha composited over black: black means "nothing here".
    assert read_video(tmp_path / "rgba.png")[0, ..., 0].tolist() == [[200, 0], [100, 50]]

    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4096).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert read_video(tmp_path / "deep.png")[0, 3, 3].tolist() == [239, 239, 239]  # 61440 / 257

    Image.fromarray(np.full((8, 8, 3), (10, 120, 250), dtype=np.uint8)).save(tmp_path / "photo.jpg", quality=95)
    photo = read_video(tmp_path / "photo.jpg")
    assert photo.shape == (1, 8, 8, 3)
    assert np.abs(photo.astype(int) - [10, 120, 250]).max() <= 3


def test_folder_with_mixed_frame_sizes_names_the_odd_one(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8)).save(tmp_path / "a2.png")
    with pytest.raises(VideoError, match=r"a2\.png: frame is 6x4, but a1\.png is 4x4"):
        read_video(tmp_path)


# --- MP4 --------------------------------------------------------------------------------------------


def test_mp4_round_trip_keeps_frames_size_and_fps(tmp_path):
    frames = _smooth_frames()
    path = write_mp4(tmp_path / "sub" / "clip.mp4", frames, fps=12.5)
    back = read_video(path)
    assert back.shape == frames.shape
    error = np.abs(back.astype(int) - frames.astype(int))
    # yuv420p halves colour resolution, so sharp colour edges blur a little; flat areas are off by ~1.
    assert error.mean() < 2.5 and np.percentile(error, 99) <= 24, (error.mean(), np.percentile(error, 99))
    info = video_info(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 6)
    assert info.fps == pytest.approx(12.5)


def test_mp4_from_a_generator_matches_the_array_and_refuses_a_frame_of_another_size(tmp_path):
    frames = _smooth_frames()
    streamed = write_mp4(tmp_path / "streamed.mp4", (frame for frame in frames), fps=12.5, total=len(frames))
    whole = write_mp4(tmp_path / "whole.mp4", frames, fps=12.5)
    np.testing.assert_array_equal(read_video(streamed), read_video(whole))
    mixed = [frames[0], frames[1, :40]]
    with pytest.raises(VideoError, match="frame 1 is uint8 \\[40, 64, 3\\], frame 0 uint8 \\[48, 64, 3\\]"):
        write_mp4(tmp_path / "mixed.mp4", iter(mixed))
    with pytest.raises(VideoError, match="no frames"):
        write_mp4(tmp_path / "none.mp4", iter([]))


def test_mp4_is_h264_yuv420p(tmp_path):
    import subprocess

    import imageio_ffmpeg

    path = write_mp4(tmp_path / "clip.mp4", _smooth_frames(2))
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    assert "h264" in probe and "yuv420p" in probe


def test_mp4_odd_size_is_padded_with_black_not_resized(tmp_path):
    frames = _smooth_frames(3, height=21, width=33)
    back = read_video(write_mp4(tmp_path / "odd.mp4", frames))
    assert back.shape == (3, 22, 34, 3)
    # Identical to writing the frames with one black row and column added by hand: no resampling.
    padded = np.zeros((3, 22, 34, 3), dtype=np.uint8)
    padded[:, :21, :33] = frames
    np.testing.assert_array_equal(back, read_video(write_mp4(tmp_path / "padded.mp4", padded)))
    assert back[:, 21:, :].mean() < 20 and back[:, :, 33:].mean() < 20  # black, give or take chroma bleed


def test_mp4_quality_trades_size_for_fidelity(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    small = write_mp4(tmp_path / "low.mp4", frames, quality=2)
    large = write_mp4(tmp_path / "high.mp4", frames, quality=9)
    assert small.stat().st_size < large.stat().st_size
    assert np.abs(read_video(large).astype(int) - frames).mean() < np.abs(read_video(small).astype(int) - frames).mean()


def test_other_containers_read_through_ffmpeg(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (16, 12), colour) for colour in colours]
    images[0].save(tmp_path / "anim.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    frames = read_video(tmp_path / "anim.gif")
    assert frames.shape == (3, 12, 16, 3)
    assert [tuple(frame[6, 8]) for frame in frames] == colours


# --- errors -----------------------------------------------------------------------------------------


def test_missing_empty_and_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(VideoError, match="no such video file or frame folder"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="the folder has no frames"):
        read_video(tmp_path / "empty")
    (tmp_path / "fake.mp4").write_text("this is not a video")
    with pytest.raises(VideoError, match="fake.mp4: not a readable video"):
        read_video(tmp_path / "fake.mp4")
    with pytest.raises(VideoError, match="fake.mp4: not a readable video"):
        video_info(tmp_path / "fake.mp4")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(VideoError, match="broken.png: not a readable image"):
        read_video(tmp_path / "broken.png")


@pytest.mark.parametrize(
    "frames, words",
    [
        (np.zeros((4, 4, 3), dtype=np.uint8), r"\[T, H, W, 3\]"),
        (np.zeros((2, 4, 4, 4), dtype=np.uint8), r"\[T, H, W, 3\]"),
        (np.zeros((2, 4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((0, 4, 4, 3), dtype=np.uint8), "at least one"),
    ],
)
def test_bad_frames_are_refused_before_writing(tmp_path, frames, words):
    with pytest.raises(VideoError, match=words):
        write_mp4(tmp_path / "x.mp4", frames)
    with pytest.raises(VideoError, match=words):
        write_png_dir(tmp_path / "x", frames)
    assert not (tmp_path / "x.mp4").exists()


def test_bad_write_settings_are_refused(tmp_path):
    frames = _smooth_frames(1)
    with pytest.raises(VideoError, match="fps"):
        write_mp4(tmp_path / "x.mp4", frames, fps=0)
    with pytest.raises(VideoError, match="quality"):
        write_mp4(tmp_path / "x.mp4", frames, quality=11)
    (tmp_path / "file").write_text("")
    with pytest.raises(DasError, match="not a folder"):
        write_png_dir(tmp_path / "file", frames)


# --- sampling ---------------------------------------------------------------------------------------


def test_sample_indices_is_rounded_linspace_with_both_ends():
    indices = sample_indices(100, 49)
    assert indices[0] == 0 and indices[-1] == 99 and len(indices) == 49
    np.testing.assert_array_equal(indices, np.round(np.linspace(0, 99, 49)).astype(int))
    assert (np.diff(indices) > 0).all()
    np.testing.assert_array_equal(sample_indices(49, 49), np.arange(49))


def test_sample_indices_repeats_evenly_when_short():
    indices = sample_indices(10, 49)
    assert (np.diff(indices) >= 0).all() and indices[-1] == 9
    counts = np.bincount(indices, minlength=10)
    assert counts.min() >= 4 and counts.max() <= 6
    np.testing.assert_array_equal(sample_indices(1, 5), np.zeros(5))


@pytest.mark.parametrize("total, n", [(0, 49), (10, 0), (2.5, 3)])
def test_sample_indices_refuses_nonsense(total, n):
    with pytest.raises(VideoError):
        sample_indices(total, n)


# --- the aspect policy: letterbox -------------------------------------------------------------------


def test_wide_frames_get_black_bars_top_and_bottom():
    frames = np.full((2, 480, 1440, 3), 200, dtype=np.uint8)
    fitted = fit_frames(frames)
    assert fitted.shape == (2, 480, 720, 3)
    assert (fitted[:, :120] == 0).all() and (fitted[:, 360:] == 0).all()
    assert (fitted[:, 120:360] == 200).all()


def test_tall_image_gets_black_bars_left_and_right():
    image = np.full((720, 480, 3), 90, dtype=np.uint8)
    fitted = fit_frames(image, resample="bilinear")
    assert fitted.shape == (480, 720, 3)  # one image in, one image out
    assert (fitted[:, :200] == 0).all() and (fitted[:, 520:] == 0).all()
    assert (fitted[:, 200:520] == 90).all()


def test_letterbox_never_stretches_a_square():
    frame = np.zeros((1, 100, 200, 3), dtype=np.uint8)
    frame[0, 25:75, 75:125] = 255  # a 50 x 50 square in the middle
    fitted = fit_frames(frame)[0]
    rows, cols = np.nonzero(fitted[..., 0])
    assert rows.ptp() + 1 == cols.ptp() + 1 == 180  # scale 3.6 in both directions
    assert (rows.min() + rows.max()) / 2 == pytest.approx(239.5, abs=1)
    assert (cols.min() + cols.max()) / 2 == pytest.approx(359.5, abs=1)


def test_frames_already_at_size_are_untouched():
    frames = np.random.default_rng(3).integers(0, 256, (2, 48, 72, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_frames(frames, width=72, height=48), frames)


def test_nearest_keeps_tracking_colours_honest_where_bilinear_invents_new_ones():
    rng = np.random.default_rng(4)
    palette = rng.integers(1, 256, (40, 3), dtype=np.uint8)
    frame = palette[rng.integers(0, 40, (1, 37, 53))]  # odd scale factor, many colour edges
    colours = {tuple(c) for c in palette} | {(0, 0, 0)}
    nearest = {tuple(c) for c in fit_frames(frame, 720, 480).reshape(-1, 3)}
    bilinear = {tuple(c) for c in fit_frames(frame, 720, 480, resample="bilinear").reshape(-1, 3)}
    assert nearest <= colours
    assert len(bilinear - colours) > 100


def test_fit_frames_refuses_bad_arguments():
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(VideoError, match="resample"):
        fit_frames(frame, resample="bicubic")
    with pytest.raises(VideoError, match="width"):
        fit_frames(frame, width=0)
    with pytest.raises(VideoError, match="uint8"):
        fit_frames(frame.astype(np.float32))
