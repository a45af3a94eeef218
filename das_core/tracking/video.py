"""Video IO and the project's one aspect policy: frames in, frames out, as uint8 [T, H, W, 3].

- `read_video` reads any common video file (through ffmpeg), a single image, or a folder of PNG/JPG
  frames (sorted naturally: frame2 before frame10). Grayscale becomes RGB; alpha is composited
  over black, because black is the tracking video's "nothing here".
- `write_mp4` writes H.264 (libx264, yuv420p, plays everywhere); `write_png_dir` writes lossless
  PNG frames.
- `sample_indices` picks evenly spaced frames, the DaS reference's way.
- `fit_frames` is THE aspect policy for tracking videos and reference images alike: letterbox.
  Scale uniformly until the frame fits, centre it, fill the rest with black; never stretch and
  never crop, so every tracked point stays where the camera saw it, just smaller. Where the frame
  lands is `letterbox_rect`, the one function that both `fit_frames` and the renderer (which draws
  tracking videos straight into the letterboxed canvas) use, so they never disagree by a pixel.

imageio / imageio-ffmpeg / PIL are imported inside the functions so importing this module is cheap.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from das_core.errors import DasError
from das_core.tracking.window import DAS_WINDOW

__all__ = [
    "IMAGE_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "fit_frames",
    "letterbox_rect",
    "read_video",
    "sample_indices",
    "video_info",
    "write_mp4",
    "write_png_dir",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PNG_NAME = "frame_{:05d}.png"
_PNG_PATTERN = re.compile(r"frame_(\d{5,})\.png")


class VideoError(DasError):
    """A video, image or frame folder that cannot be read or written; the message names it."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself (from its header, without decoding every frame)."""

    width: int
    height: int
    fps: float
    num_frames: int


def read_video(path: str | os.PathLike, *, progress: bool = False) -> np.ndarray:
    """Read a video file, an image file or a folder of PNG/JPG frames into uint8 [T, H, W, 3].

    Folders are read in natural order of the file names; every frame must have the same size.
    Raises `VideoError` for a missing path, an empty folder, mixed frame sizes or an unreadable file.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file()),
            key=_natural_key,
        )
        if not files:
            raise VideoError(f"{path}: the folder has no frames (expected {', '.join(IMAGE_SUFFIXES)} files)")
        frames = [_read_image(file) for file in _progress(files, progress, f"reading {path.name}")]
        for file, frame in zip(files, frames):
            if frame.shape != frames[0].shape:
                raise VideoError(
                    f"{file}: frame is {frame.shape[1]}x{frame.shape[0]}, but {files[0].name} is "
                    f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames in a folder must have one size"
                )
        return np.stack(frames)
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frame folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _read_image(path)[None]
    return _read_video_file(path, progress)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and frame count of a video file, from ffmpeg's reading of its header."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        num_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, StopIteration) as error:
        raise VideoError(f"{path}: not a readable video ({_last_line(error)})") from None
    finally:
        reader.close()
    width, height = meta["size"]
    return VideoInfo(width=int(width), height=int(height), fps=float(meta["fps"]), num_frames=int(num_frames))


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = DAS_WINDOW.fps,
    quality: int = 8,
    *,
    progress: bool = False,
    total: int | None = None,
) -> Path:
    """Write uint8 frames as an H.264 MP4 (libx264, yuv420p) and return its path.

    `frames` is an array [T, H, W, 3], or any iterable of [H, W, 3] frames of one size (a generator
    is encoded as it yields, by ffmpeg in its own process, without holding the video in memory;
    `total` is its length for the progress bar). `quality` runs from 1 (smallest file) to 10 (best);
    8, the default, is x264's CRF 10, close to visually lossless, since tracking colours are data.
    yuv420p needs even sizes: an odd width or height gets one black column (right) or row (bottom)
    added, never a resize; black is "nothing here" in a tracking video. Missing parent folders are created.
    """
    import imageio_ffmpeg

    if not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"fps must be a positive number, got {fps!r}")
    if int(quality) != quality or not 1 <= quality <= 10:
        raise VideoError(f"quality must be a whole number from 1 to 10, got {quality!r}")
    if isinstance(frames, np.ndarray):
        frames = _check_frames(frames)
        total, stream = len(frames), iter(frames)
    else:
        stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise VideoError("no frames to write: give at least one")
    height, width = _check_frames(np.asarray(first)[None]).shape[1:3]
    padded = (height + height % 2, width + width % 2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (padded[1], padded[0]),
        fps=float(fps),
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=None,
        output_params=["-crf", str(round((10 - quality) * 51 / 10)), "-movflags", "+faststart"],
        macro_block_size=1,
        ffmpeg_log_level="error",
    )
    try:
        writer.send(None)
        canvas = np.zeros((*padded, 3), dtype=np.uint8)
        for index, frame in enumerate(
            _progress(itertools.chain([first], stream), progress, f"writing {path.name}", total)
        ):
            frame = np.asarray(frame)
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise VideoError(
                    f"frame {index} is {frame.dtype} {list(frame.shape)}, frame 0 uint8 {[height, width, 3]}: "
                    "give frames of one size"
                )
            canvas[:height, :width] = frame
            writer.send(canvas.tobytes())
        writer.close()
    except (OSError, RuntimeError) as error:
        raise VideoError(f"{path}: could not write the MP4 ({_last_line(error)})") from None
    finally:
        writer.close()
    return path


def write_png_dir(directory: str | os.PathLike, frames: np.ndarray) -> list[Path]:
    """Write uint8 [T, H, W, 3] frames losslessly as DIR/frame_00000.png ... and return the paths.

    The folder is created if needed. Older `frame_NNNNN.png` files beyond the new count (from an
    earlier, longer run) are removed so that reading the folder back gives exactly these frames.
    """
    from PIL import Image

    frames = _check_frames(frames)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise VideoError(f"{directory}: exists and is not a folder; choose a folder for the PNG frames")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        paths.append(directory / _PNG_NAME.format(index))
        Image.fromarray(frame).save(paths[-1], compress_level=1)
    for stale in directory.iterdir():
        match = _PNG_PATTERN.fullmatch(stale.name)
        if match and int(match.group(1)) >= len(frames):
            stale.unlink()
    return paths


def sample_indices(total: int, n: int) -> np.ndarray:
    """Indices of `n` evenly spaced frames out of `total`: round(linspace(0, total - 1, n)).

    With at least `n` source frames this is the DaS reference's sampling (first and last frame
    always included; numpy rounding, so an exact .5 goes to the even index). With fewer source
    frames than `n`, each source frame is repeated evenly, in order (n // total or one more times:
    floor(i * total / n)), which plays the motion slower rather than inventing frames; rounded
    linspace would give the first and last frame only half a share.
    """
    if int(total) != total or total < 1:
        raise VideoError(f"cannot sample from {total!r} frames; need at least one frame")
    if int(n) != n or n < 1:
        raise VideoError(f"number of frames to sample must be a positive whole number, got {n!r}")
    total, n = int(total), int(n)
    if total < n:
        return np.arange(n, dtype=np.int64) * total // n
    return np.rint(np.linspace(0, total - 1, n)).astype(np.int64)


def model_frame_indices(frames: int, model_frames: int) -> np.ndarray:
    """The control frame behind each of the model's `model_frames`: a shorter control in order, then its last
    frame held; a longer one (e.g. a server with --max-frames above the model's) sampled evenly."""
    if frames > model_frames:
        return sample_indices(frames, model_frames)
    return np.minimum(np.arange(model_frames), frames - 1)


def fit_frames(
    frames: np.ndarray,
    width: int = DAS_WINDOW.width,
    height: int = DAS_WINDOW.height,
    *,
    resample: Literal["nearest", "bilinear"] = "nearest",
) -> np.ndarray:
    """Letterbox uint8 frames [T, H, W, 3] (or one image [H, W, 3]) to `width` x `height`.

    The project's one aspect policy: scale uniformly so the whole frame fits, centre it, and fill
    the bars with black. Never stretches, never crops. Frames already at the size come back as is.
    The frame lands in `letterbox_rect(W, H, width, height)`; `das_core.tracking.render.render_tracking`
    with `fit=(width, height)` draws a tracking video straight into that same rectangle (colours
    then name positions in the fitted frame), so a reference image fitted here lines up with it.

    `resample="nearest"` (the default) is for tracking videos: their colours are data (first-frame
    position and depth), and averaging neighbours at an edge would invent colours that name
    positions which do not exist. `resample="bilinear"` (antialiased when shrinking) is for
    reference images and other pictures meant for eyes.
    """
    from PIL import Image

    filters = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
    if resample not in filters:
        raise VideoError(f"resample must be 'nearest' or 'bilinear', got {resample!r}")
    for name, value in (("width", width), ("height", height)):
        if int(value) != value or value < 1:
            raise VideoError(f"target {name} must be a positive whole number of pixels, got {value!r}")
    frames = np.asarray(frames)
    single = frames.ndim == 3
    frames = _check_frames(frames[None] if single else frames)
    source_height, source_width = frames.shape[1:3]
    if (source_width, source_height) == (width, height):
        return frames[0] if single else frames

    left, top, scaled_width, scaled_height = letterbox_rect(source_width, source_height, width, height)
    result = np.zeros((len(frames), height, width, 3), dtype=np.uint8)
    for out, frame in zip(result, frames):
        resized = Image.fromarray(frame).resize((scaled_width, scaled_height), filters[resample])
        out[top : top + scaled_height, left : left + scaled_width] = np.asarray(resized)
    return result[0] if single else result


def fit_points(xy: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Pixel positions (x, y) in a `source_size` (width, height) image moved to where `fit_frames` puts that
    image in a `size` frame: float32, same shape."""
    left, top, width, height = letterbox_rect(*source_size, *size)
    scale = np.array([width / source_size[0], height / source_size[1]])
    return (np.asarray(xy) * scale + np.array([left, top])).astype(np.float32)


def letterbox_rect(source_width: int, source_height: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where a `source_width` x `source_height` frame lands when letterboxed into `width` x `height`:
    (left, top, scaled width, scaled height) in whole pixels.

    Scale s = min(width / source_width, height / source_height); the scaled size is rounded (at
    least 1, at most the target), and the frame is centred, any odd pixel of the bars going right
    and bottom. The one source of this geometry for `fit_frames` and the renderer.
    """
    scale = min(width / source_width, height / source_height)
    scaled_width = min(width, max(1, round(source_width * scale)))
    scaled_height = min(height, max(1, round(source_height * scale)))
    return (width - scaled_width) // 2, (height - scaled_height) // 2, scaled_width, scaled_height


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must have shape [T, H, W, 3] (RGB), got {list(frames.shape)}")
    if frames.dtype != np.uint8:
        raise VideoError(f"frames must be uint8 (0..255), got {frames.dtype}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise VideoError(f"frames must hold at least one non-empty frame, got shape {list(frames.shape)}")
    return np.ascontiguousarray(frames)


def _read_image(path: Path) -> np.ndarray:
    """One image file to uint8 [H, W, 3]: 16-bit scaled down, grayscale spread, alpha over black."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError) as error:
        raise VideoError(f"{path}: not a readable image ({error})") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        gray = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(gray / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    array = np.asarray(image if image.mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGBA"))
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] in (2, 4):  # gray+alpha or RGBA: composite over black
        alpha = array[..., -1:].astype(np.uint16)
        array = ((array[..., :-1].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def _read_video_file(path: Path, progress: bool) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        expected = round(float(meta.get("duration") or 0) * float(meta.get("fps") or 0)) or None  # for the bar
        frames = [
            np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            for data in _progress(reader, progress, f"reading {path.name}", expected)
        ]
    except (OSError, RuntimeError, StopIteration) as error:
        raise VideoError(f"{path}: not a readable video ({_last_line(error)})") from None
    finally:
        reader.close()
    if not frames:
        raise VideoError(f"{path}: the video has no frames")
    return np.stack(frames)


def _progress(items, enabled: bool, description: str, total: int | None = None):
    from tqdm import tqdm

    return tqdm(items, desc=description, total=total, unit="frame", disable=not enabled, leave=False)


def _natural_key(path: Path) -> list:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
