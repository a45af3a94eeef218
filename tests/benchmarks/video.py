"""Video IO timings for one DaS-sized clip (49 frames, 720 x 480): python tests/benchmarks/video.py

Times write_mp4, read_video (MP4 and PNG folder), write_png_dir and fit_frames (both filters), the
steps every job pays between a tracking video and the model. Best of 3 runs, seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from das_core.tracking.video import fit_frames, read_video, write_mp4, write_png_dir


def _best(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    y, x = np.mgrid[0:480, 0:720]
    frames = np.zeros((49, 480, 720, 3), dtype=np.uint8)
    for t in range(49):
        frames[t, ..., 0] = (x * 255 // 719 + 3 * t) % 256
        frames[t, ..., 1] = y * 255 // 479
        frames[t, ..., 2] = (t * 5) % 256
    large = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)[:, :, :1200]  # 49 x 960 x 1200 (5:4)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        results = {
            "write_mp4 49x720x480 (quality 8)": _best(lambda: write_mp4(folder / "clip.mp4", frames)),
            "read_video mp4 49x720x480": _best(lambda: read_video(folder / "clip.mp4")),
            "write_png_dir 49x720x480": _best(lambda: write_png_dir(folder / "png", frames)),
            "read_video png dir 49x720x480": _best(lambda: read_video(folder / "png")),
            "fit_frames 49x1200x960 -> 720x480 nearest": _best(lambda: fit_frames(large)),
            "fit_frames 49x1200x960 -> 720x480 bilinear": _best(lambda: fit_frames(large, resample="bilinear")),
        }
        size = (folder / "clip.mp4").stat().st_size
    for name, seconds in results.items():
        print(f"{name}: {seconds:.3f} s")
    print(f"mp4 size: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
