"""The training dataset layout (das_core/model/README.md, Dataset layout), frames and buckets; no torch.

A dataset root holds one entry per line in `prompt.txt`, `videos.txt`, `trackings.txt` and optionally
`images.txt` (line i of every file is sample i, paths relative to the root), or a CSV with named
columns. `read_table` reads the columns as they are (for `das dataset check`, which reports every
problem); `load_samples` returns validated `Sample`s for the trainer.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from das_core.errors import DasError, plural

PROMPT_FILE = "prompt.txt"
VIDEOS_FILE = "videos.txt"
TRACKINGS_FILE = "trackings.txt"
IMAGES_FILE = "images.txt"
# The reference flags' defaults name CSV columns; in the .txt layout they fall back to these files.
_DEFAULT_COLUMN_FILES = {"text": PROMPT_FILE, "video": VIDEOS_FILE, None: TRACKINGS_FILE}
_CSV_TRACKING_COLUMN = "tracking"


class DatasetError(DasError):
    """A dataset that cannot be read as the DaS training layout; the message names file and line.

    `problems` holds each problem on its own when the message joins several.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class DatasetTable:
    """The dataset's columns as written: one string per entry, before any file is checked.

    `sources` names where each column came from (a file or a CSV column) for messages; `images` is
    None when the dataset conditions on each video's first frame.
    """

    root: Path
    prompts: list[str]
    videos: list[str]
    trackings: list[str]
    images: list[str] | None
    sources: dict[str, str]


@dataclass(frozen=True)
class Sample:
    """One training sample: prompt, RGB video, tracking video and optional first-frame image."""

    index: int
    prompt: str
    video: Path
    tracking: Path
    image: Path | None


def read_table(
    data_root: str | os.PathLike,
    dataset_file: str | os.PathLike | None = None,
    *,
    caption_column: str = "text",
    video_column: str = "video",
    tracking_column: str | None = None,
    image_column: str | None = None,
) -> DatasetTable:
    """Read the four columns from the .txt layout or a CSV, like the reference trainer.

    Lines are stripped and blank lines skipped (as the reference does). A missing root, file or
    CSV column raises `DatasetError`; counts and paths are not checked here.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root folder not found; pass the folder holding {PROMPT_FILE} etc.")
    if dataset_file is not None:
        return _read_csv(root, Path(dataset_file), caption_column, video_column, tracking_column, image_column)

    wanted = {
        "prompts": (caption_column, "--caption_column"),
        "videos": (video_column, "--video_column"),
        "trackings": (tracking_column, "--tracking_column"),
    }
    if image_column is not None:
        wanted["images"] = (image_column, "--image_column")
    sources, missing = {}, []
    for key, (column, flag) in wanted.items():
        try:
            sources[key] = _column_file(root, column, flag)
        except DatasetError as error:
            missing.append(str(error))
    if missing:  # name every missing file at once
        raise DatasetError(*missing)
    columns = {key: _read_lines(root / name) for key, name in sources.items()}
    return DatasetTable(
        root=root,
        prompts=columns["prompts"],
        videos=columns["videos"],
        trackings=columns["trackings"],
        images=columns.get("images"),
        sources=sources,
    )


def load_samples(
    data_root: str | os.PathLike,
    dataset_file: str | os.PathLike | None = None,
    *,
    caption_column: str = "text",
    video_column: str = "video",
    tracking_column: str | None = None,
    image_column: str | None = None,
    id_token: str | None = None,
) -> list[Sample]:
    """Samples ready for training: counts equal and every file present, else `DatasetError`."""
    table = read_table(
        data_root,
        dataset_file,
        caption_column=caption_column,
        video_column=video_column,
        tracking_column=tracking_column,
        image_column=image_column,
    )
    problems = count_problems(table)
    columns = [("videos", table.videos), ("trackings", table.trackings)]
    if table.images is not None:
        columns.append(("images", table.images))
    for key, entries in columns:
        missing = [(i, entry) for i, entry in enumerate(entries) if not (table.root / entry).is_file()]
        if missing:
            first = ", ".join(f"line {i + 1}: {entry}" for i, entry in missing[:3])
            listed = plural(len(missing), "file") + f" listed in {table.sources[key]}"
            problems.append(f"{listed} {'does' if len(missing) == 1 else 'do'} not exist ({first})")
    if problems:
        raise DatasetError(f"{table.root}: " + "; ".join(problems) + ". Run `das dataset check` for the full list.")
    if not table.prompts:
        raise DatasetError(f"{table.root}: the dataset has no samples")
    prefix = id_token or ""
    return [
        Sample(
            index=i,
            prompt=prefix + table.prompts[i],
            video=table.root / table.videos[i],
            tracking=table.root / table.trackings[i],
            image=None if table.images is None else table.root / table.images[i],
        )
        for i in range(len(table.prompts))
    ]


def count_problems(table: DatasetTable) -> list[str]:
    """One sentence per column whose entry count differs from the prompts'."""
    counts = {"prompts": len(table.prompts), "videos": len(table.videos), "trackings": len(table.trackings)}
    if table.images is not None:
        counts["images"] = len(table.images)
    if len(set(counts.values())) <= 1:
        return []
    listing = ", ".join(f"{table.sources[key]} has {count}" for key, count in counts.items())
    return [f"entry counts differ ({listing}); line i of every file must be sample i"]


def nearest_frame_bucket(num_frames: int, frame_buckets: list[int], max_num_frames: int) -> int:
    """The reference's frame bucket: the one nearest to min(video frames, max_num_frames)."""
    return min(frame_buckets, key=lambda bucket: abs(bucket - min(num_frames, max_num_frames)))


def reference_frame_indices(num_frames: int, bucket: int) -> np.ndarray:
    """Frames the reference trainer takes: every (num_frames // bucket)-th from 0, first `bucket` of them.

    A video shorter than the bucket cannot fill it; the reference crashes there, we raise.
    """
    if num_frames < bucket:
        raise DatasetError(f"video has {num_frames} frames, fewer than the frame bucket {bucket}")
    return np.arange(0, num_frames, num_frames // bucket)[:bucket]


def nearest_resolution(height: int, width: int, height_buckets: list[int], width_buckets: list[int]) -> tuple[int, int]:
    """The reference's resolution bucket: (h, w) minimising |h - height| + |w - width|."""
    candidates = [(h, w) for h in height_buckets for w in width_buckets]
    return min(candidates, key=lambda hw: abs(hw[0] - height) + abs(hw[1] - width))


def _column_file(root: Path, column: str | None, flag: str) -> str:
    if column is not None and (root / column).is_file():
        return column
    fallback = _DEFAULT_COLUMN_FILES.get(column)
    if fallback is not None and (root / fallback).is_file():
        return fallback
    names = [name for name in (column, fallback) if name is not None]
    wanted = " or ".join(names) if names else "(none given)"
    raise DatasetError(f"{root}: no file {wanted} (named by {flag}); the dataset layout needs one entry per line there")


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def _read_csv(
    root: Path,
    dataset_file: Path,
    caption_column: str,
    video_column: str,
    tracking_column: str | None,
    image_column: str | None,
) -> DatasetTable:
    path = dataset_file if dataset_file.is_absolute() or dataset_file.is_file() else root / dataset_file
    if not path.is_file():
        raise DatasetError(f"{dataset_file}: CSV dataset file not found")
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        rows = list(reader)
    wanted = {"prompts": caption_column, "videos": video_column, "trackings": tracking_column or _CSV_TRACKING_COLUMN}
    if image_column is not None:
        wanted["images"] = image_column
    missing = [column for column in wanted.values() if column not in header]
    if missing:
        raise DatasetError(
            f"{path}: missing {'column' if len(missing) == 1 else 'columns'} {', '.join(missing)} "
            f"(found {', '.join(header) or 'none'}); "
            "name them with --caption_column, --video_column, --tracking_column, --image_column"
        )
    columns = {key: [(row[column] or "").strip() for row in rows] for key, column in wanted.items()}
    return DatasetTable(
        root=root,
        prompts=columns["prompts"],
        videos=columns["videos"],
        trackings=columns["trackings"],
        images=columns.get("images"),
        sources={key: f"{path.name}:{column}" for key, column in wanted.items()},
    )
