"""`das dataset check`: every problem of a training dataset, found in one pass; no torch.

Checks, in order: the layout files, equal entry counts, files that exist, videos that decode, frame
counts and sizes (each RGB video against the expected size, each tracking video and image against
its RGB video), and tracking videos that look like DaS tracking videos (das_core/model/README.md,
Tracking videos):
- coverage: at least `MIN_COVERAGE` of the pixels (over the whole video) are not black;
- black background: at least `MIN_BLACK` of the first frame's pixels are black;
- position colours: on the first frame, red grows left to right and green top to bottom
  (correlation of R with x and G with y at least `MIN_POSITION_CORRELATION`), which an RGB video
  listed by mistake almost never does.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from das_core.train.layout import DatasetError, DatasetTable, count_problems, read_table

BLACK_LEVEL = 16  # a pixel whose brightest channel is at most this counts as black (H.264 noise)
MIN_COVERAGE = 0.005
MIN_BLACK = 0.005
MIN_POSITION_CORRELATION = 0.5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset; `line` is the 1-based entry number when it concerns one sample."""

    kind: str  # layout, count, missing, unreadable, frames, size, coverage, background, colours
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"sample {self.line}: " if self.line is not None else ""
        return f"[{self.kind}] {where}{self.message}"


@dataclass(frozen=True)
class CheckReport:
    """What `check_dataset` looked at and found."""

    root: Path
    num_samples: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(
    data_root: str | os.PathLike,
    dataset_file: str | os.PathLike | None = None,
    *,
    caption_column: str = "text",
    video_column: str = "video",
    tracking_column: str | None = None,
    image_column: str | None = None,
    num_frames: int | None = 49,
    width: int | None = 720,
    height: int | None = 480,
    jobs: int = 2,
    progress: bool = False,
) -> CheckReport:
    """Check a dataset and return every problem (never stops at the first).

    `num_frames`, `width` and `height` are what each RGB video must have (None skips that check);
    `jobs` videos are decoded at a time (ffmpeg runs outside the GIL).
    """
    root = Path(data_root)
    try:
        table = read_table(
            root,
            dataset_file,
            caption_column=caption_column,
            video_column=video_column,
            tracking_column=tracking_column,
            image_column=image_column,
        )
    except DatasetError as error:
        return CheckReport(root, 0, [Problem("layout", problem) for problem in error.problems])

    problems = [Problem("count", message) for message in count_problems(table)]
    num_samples = min(len(table.prompts), len(table.videos), len(table.trackings), *_image_count(table))
    empty = [i for i, prompt in enumerate(table.prompts[:num_samples]) if not prompt]
    problems += [Problem("layout", "empty prompt", i + 1) for i in empty]

    def check_one(index: int) -> list[Problem]:
        image = None if table.images is None else table.images[index]
        return _check_sample(table, index, image, num_frames, width, height)

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = pool.map(check_one, range(num_samples))
        for sample_problems in tqdm(results, total=num_samples, desc="checking", unit="sample", disable=not progress):
            problems += sample_problems
    return CheckReport(root, num_samples, problems)


def tracking_look_problems(frames: np.ndarray) -> list[tuple[str, str]]:
    """Why `frames` (uint8 [T, H, W, 3]) does not look like a DaS tracking video: (kind, message) pairs."""
    found = []
    black = frames.max(axis=-1) <= BLACK_LEVEL
    coverage = 1.0 - float(black.mean())
    if coverage < MIN_COVERAGE:
        found.append(("coverage", f"only {coverage:.2%} of the pixels are not black: the tracking video shows nothing"))
        return found
    first_black = float(black[0].mean())
    if first_black < MIN_BLACK:
        found.append(
            (
                "background",
                f"the background is not black (only {first_black:.2%} of frame 0 is black); is this the RGB video?",
            )
        )
    covered = ~black[0]
    if covered.sum() >= 16:
        ys, xs = np.nonzero(covered)
        colours = frames[0][covered].astype(np.float64)
        red_x = _correlation(colours[:, 0], xs)
        green_y = _correlation(colours[:, 1], ys)
        if red_x < MIN_POSITION_CORRELATION or green_y < MIN_POSITION_CORRELATION:
            found.append(
                (
                    "colours",
                    f"frame 0 colours do not encode position (corr(R, x) = {red_x:.2f}, corr(G, y) = {green_y:.2f}; "
                    f"a tracking video has both near 1)",
                )
            )
    return found


def _check_sample(
    table: DatasetTable,
    index: int,
    image: str | None,
    num_frames: int | None,
    width: int | None,
    height: int | None,
) -> list[Problem]:
    from das_core.tracking.video import read_video

    line = index + 1
    problems: list[Problem] = []
    paths = {"video": table.videos[index], "tracking video": table.trackings[index]}
    if image is not None:
        paths["image"] = image
    missing = [name for name, path in paths.items() if not (table.root / path).is_file()]
    problems += [Problem("missing", f"{name} {paths[name]} does not exist", line) for name in missing]

    loaded: dict[str, np.ndarray] = {}
    for name in ("video", "tracking video"):
        if name in missing:
            continue
        try:
            loaded[name] = read_video(table.root / paths[name])
        except Exception as error:  # any decoder failure is the dataset's problem, reported not raised
            problems.append(Problem("unreadable", f"{name} {paths[name]} cannot be read ({_short(error)})", line))

    video = loaded.get("video")
    if video is not None:
        frames, video_height, video_width = video.shape[:3]
        if num_frames is not None and frames != num_frames:
            problems.append(
                Problem("frames", f"video {paths['video']} has {frames} frames, expected {num_frames}", line)
            )
        if (width is not None and video_width != width) or (height is not None and video_height != height):
            problems.append(
                Problem(
                    "size", f"video {paths['video']} is {video_width}x{video_height}, expected {width}x{height}", line
                )
            )

    tracking = loaded.get("tracking video")
    if tracking is not None:
        if video is not None and tracking.shape[0] != video.shape[0]:
            problems.append(
                Problem(
                    "frames",
                    f"tracking video {paths['tracking video']} has {tracking.shape[0]} frames, its video {video.shape[0]}",
                    line,
                )
            )
        if video is not None and tracking.shape[1:3] != video.shape[1:3]:
            problems.append(
                Problem(
                    "size",
                    f"tracking video {paths['tracking video']} is {_size(tracking)}, its video is {_size(video)}",
                    line,
                )
            )
        for kind, message in tracking_look_problems(tracking):
            problems.append(Problem(kind, f"tracking video {paths['tracking video']}: {message}", line))

    if image is not None and "image" not in missing:
        problems += _check_image(table.root / image, image, video, line)
    return problems


def _check_image(path: Path, name: str, video: np.ndarray | None, line: int) -> list[Problem]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            size = opened.size
            opened.load()
    except (OSError, UnidentifiedImageError) as error:
        return [Problem("unreadable", f"image {name} cannot be read ({_short(error)})", line)]
    if video is not None and size != (video.shape[2], video.shape[1]):
        return [Problem("size", f"image {name} is {size[0]}x{size[1]}, its video is {_size(video)}", line)]
    return []


def _image_count(table: DatasetTable) -> list[int]:
    return [] if table.images is None else [len(table.images)]


def _correlation(values: np.ndarray, positions: np.ndarray) -> float:
    if values.std() == 0 or positions.std() == 0:
        return 0.0
    return float(np.corrcoef(values, positions.astype(np.float64))[0, 1])


def _size(frames: np.ndarray) -> str:
    return f"{frames.shape[2]}x{frames.shape[1]}"


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:200] if text else type(error).__name__
