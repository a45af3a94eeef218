"""How far the examples' tracking colours are from naming each floor pixel's own position.

Run: `python tests/benchmarks/floor_error.py [--encoding exact|reference] [NAME ...]`.
At the first frame every visible point is where it starts, so a pixel (x, y) should read
R ~ (x + 0.5) / W and G ~ (y + 0.5) / H. For each example (`examples/NAME/tracks.npz`) this prints
the share of visible ground pixels (the 24 x 24 grid on z = 0 every scene has) whose R or G is
more than 0.2 from that, and the largest error in levels. Ground pixels are found by rendering the
first frame again with the ground's vertices moved behind the camera at a made-up earlier frame:
whatever turns black there was ground.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from das_core.tracking.render import ENCODINGS, render_tracking
from das_core.tracking.tracks import Tracks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("walk_cycle", "camera_orbit", "thrown_ball")


def ground_vertices(points: np.ndarray) -> np.ndarray:
    """The ground grid's vertices: on z = 0 at even x and y (its spacing is 2 units)."""
    on_grid = np.abs(points[:, :2] / 2 - np.round(points[:, :2] / 2)).max(axis=1) < 1e-4
    return on_grid & (np.abs(points[:, 2]) < 1e-4)


def visible_ground(tracks: Tracks) -> np.ndarray:
    """bool [H, W]: the pixels where the ground is the nearest surface at the first frame."""
    first = tracks.points[0].copy()
    world_to_camera = tracks.world_to_camera[0].astype(np.float64)
    behind = -np.linalg.solve(world_to_camera[:3, :3], world_to_camera[:3, 3] + [0, 0, 1])  # z = -1
    hidden = first.copy()
    hidden[ground_vertices(first)] = behind
    two = Tracks(
        points=np.stack([hidden, first]),
        world_to_camera=np.repeat(tracks.world_to_camera[:1], 2, axis=0),
        intrinsics=np.repeat(tracks.intrinsics[:1], 2, axis=0),
        width=tracks.width,
        height=tracks.height,
        faces=tracks.faces,
    )
    # Exact colours: at the first frame every visible point is coloured, the ground too.
    without_ground = render_tracking(two, num_frames=2, encoding="exact")[1]
    with_ground = render_tracking(tracks, num_frames=1, encoding="exact")[0]
    return (with_ground.max(axis=-1) > 0) & (without_ground.max(axis=-1) == 0)


def floor_error(tracks: Tracks, encoding: str) -> tuple[float, int, int]:
    """(share of visible ground pixels more than 0.2 off in R or G, largest error in levels, count)."""
    frame = render_tracking(tracks, num_frames=1, encoding=encoding)[0].astype(np.float64)
    rows, columns = np.mgrid[0 : tracks.height, 0 : tracks.width]
    error = np.maximum(
        np.abs(frame[..., 0] / 255 - (columns + 0.5) / tracks.width),
        np.abs(frame[..., 1] / 255 - (rows + 0.5) / tracks.height),
    )
    ground = visible_ground(tracks)
    return float((error[ground] > 0.2).mean()), int(np.round(error[ground].max() * 255)), int(ground.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoding", choices=ENCODINGS, default="exact")
    parser.add_argument("names", nargs="*", default=list(NAMES))
    args = parser.parse_args()
    for name in args.names:
        share, worst, count = floor_error(Tracks.load(EXAMPLES / name / "tracks.npz"), args.encoding)
        print(
            f"{name}, {args.encoding}: {share:.1%} of {count:,} visible ground pixels off by > 0.2, worst {worst} levels"
        )


if __name__ == "__main__":
    main()
