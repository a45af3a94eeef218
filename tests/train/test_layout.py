"""Dataset layout: the .txt files and CSV, reference frame sampling and resolution buckets."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.train.layout import (
    DatasetError,
    load_samples,
    nearest_frame_bucket,
    nearest_resolution,
    read_table,
    reference_frame_indices,
)


def _write(root, name, lines):
    (root / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def txt_root(tmp_path):
    for folder in ("videos", "tracking", "images"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        for path in (f"videos/{i:05d}.mp4", f"tracking/{i:05d}_tracking.mp4", f"images/{i:05d}.png"):
            (tmp_path / path).write_bytes(b"x")
    _write(tmp_path, "prompt.txt", ["a ball", "", "a cube"])  # blank lines are skipped, as the reference does
    _write(tmp_path, "videos.txt", ["videos/00000.mp4", "videos/00001.mp4"])
    _write(tmp_path, "trackings.txt", ["tracking/00000_tracking.mp4", "tracking/00001_tracking.mp4"])
    _write(tmp_path, "images.txt", ["images/00000.png", "images/00001.png"])
    return tmp_path


def test_txt_layout_with_reference_default_flags(txt_root):
    samples = load_samples(txt_root, id_token="TOK ")
    assert [s.prompt for s in samples] == ["TOK a ball", "TOK a cube"]
    assert samples[1].video == txt_root / "videos/00001.mp4"
    assert samples[1].tracking == txt_root / "tracking/00001_tracking.mp4"
    assert samples[0].image is None  # the reference conditions on the video's first frame


def test_images_txt_is_used_when_named(txt_root):
    samples = load_samples(txt_root, image_column="images.txt")
    assert samples[1].image == txt_root / "images/00001.png"


def test_reference_training_script_flags(txt_root):
    table = read_table(
        txt_root, caption_column="prompt.txt", video_column="videos.txt", tracking_column="trackings.txt"
    )
    assert table.sources == {"prompts": "prompt.txt", "videos": "videos.txt", "trackings": "trackings.txt"}


def test_csv_with_named_columns(txt_root):
    (txt_root / "data.csv").write_text(
        'caption,clip,track,first\n"a ball, bouncing",videos/00000.mp4,tracking/00000_tracking.mp4,images/00000.png\n',
        encoding="utf-8",
    )
    samples = load_samples(
        txt_root,
        "data.csv",
        caption_column="caption",
        video_column="clip",
        tracking_column="track",
        image_column="first",
    )
    assert len(samples) == 1 and samples[0].prompt == "a ball, bouncing"
    assert samples[0].image == txt_root / "images/00000.png"
    with pytest.raises(DatasetError, match="missing column"):
        load_samples(txt_root, "data.csv")


def test_counts_and_missing_files_are_errors(txt_root):
    _write(txt_root, "trackings.txt", ["tracking/00000_tracking.mp4"])
    with pytest.raises(DatasetError, match="entry counts differ"):
        load_samples(txt_root)
    _write(txt_root, "trackings.txt", ["tracking/00000_tracking.mp4", "tracking/gone.mp4"])
    with pytest.raises(DatasetError, match="gone.mp4"):
        load_samples(txt_root)


def test_a_missing_column_file_is_named_plainly(txt_root):
    (txt_root / "trackings.txt").unlink()
    with pytest.raises(DatasetError, match="no file trackings.txt ") as error:
        read_table(txt_root)
    assert "None" not in str(error.value)


def test_reference_frame_sampling():
    assert reference_frame_indices(49, 49).tolist() == list(range(49))
    assert reference_frame_indices(100, 49).tolist() == list(range(0, 98, 2))  # stride 100 // 49 = 2
    assert len(reference_frame_indices(150, 49)) == 49
    with pytest.raises(DatasetError, match="fewer than the frame bucket"):
        reference_frame_indices(9, 49)


def test_buckets_pick_the_nearest():
    assert nearest_frame_bucket(120, [9, 49], max_num_frames=49) == 49
    assert nearest_frame_bucket(10, [9, 49], max_num_frames=49) == 9
    assert nearest_resolution(470, 700, [256, 480, 720], [480, 720, 960]) == (480, 720)
    assert nearest_resolution(64, 96, [64], [96]) == (64, 96)
    assert isinstance(reference_frame_indices(49, 49), np.ndarray)
