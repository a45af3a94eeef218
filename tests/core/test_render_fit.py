"""`render_tracking(..., fit=(720, 480))`: the tracking video drawn straight into the letterboxed
model frame, with colours that name positions in that frame (das_core/tracking/ENCODING.md: the first frame's colour
is the point's position in the frame the model sees), bars black, and the same content rectangle
as `fit_frames` gives the reference image. Expected values come from its formulas here."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.tracking.render import RenderError, render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import fit_frames, letterbox_rect
from das_core.wire.protocol import JobRequest
from das_server.backends.preview import PreviewBackend

FIT = (720, 480)


def camera_tracks(points, width: int, height: int, faces=None) -> Tracks:
    """Tracks of camera-space points [T, N, 3] seen by a fixed camera at the origin (focal = width)."""
    points = np.asarray(points, dtype=np.float64)
    intrinsics = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1.0]])
    return Tracks(
        points=points,
        world_to_camera=np.tile(np.eye(4), (len(points), 1, 1)),
        intrinsics=np.tile(intrinsics, (len(points), 1, 1)),
        width=width,
        height=height,
        faces=faces,
    )


def canvas_to_camera(xy: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Camera-space points that land on canvas positions `xy` [N, 2] of the fitted frame."""
    left, top, content_width, content_height = letterbox_rect(width, height, *FIT)
    u = (xy[:, 0] - left) * width / content_width
    v = (xy[:, 1] - top) * height / content_height
    return np.stack([(u - width / 2) * depth / width, (v - height / 2) * depth / width, depth], axis=1)


def grid_faces(columns: int, rows: int) -> np.ndarray:
    i = (np.arange(rows - 1)[:, None] * columns + np.arange(columns - 1)).ravel()
    return np.concatenate([np.stack([i, i + 1, i + columns + 1], 1), np.stack([i, i + columns + 1, i + columns], 1)])


def canvas_grid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    gx, gy = np.meshgrid(x, y)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (1000, 700)])
def test_first_frame_colour_is_the_position_in_the_fitted_frame(size):
    width, height = size
    left, top, content_width, content_height = letterbox_rect(width, height, *FIT)
    # Vertices on canvas pixel centres inside the content rectangle, at varying depths.
    xy = canvas_grid(
        left + 3.5 + np.arange(9) * (content_width - 8) // 8, top + 3.5 + np.arange(7) * (content_height - 8) // 6
    )
    depth = 4.0 + 0.5 * np.sin(np.arange(len(xy)))
    world = canvas_to_camera(xy, depth, width, height)
    video = render_tracking(camera_tracks([world], width, height, faces=grid_faces(9, 7)), num_frames=1, fit=FIT)[0]

    inverse = 1 / np.linalg.norm(world, axis=1)
    lo, hi = np.percentile(inverse, [2, 98])
    expected = np.floor(
        np.stack([xy[:, 0] / FIT[0], xy[:, 1] / FIT[1], np.clip((inverse - lo) / (hi - lo), 0, 1)], 1) * 255
    )
    rows, columns = np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)
    assert video.shape == (FIT[1], FIT[0], 3)
    np.testing.assert_array_equal(video[rows, columns], expected.astype(np.uint8))


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)])
def test_bars_are_black_in_every_frame_and_the_content_matches_fit_frames(size):
    # A plane filling the camera's view at frame 0 that slides and grows past every edge later.
    width, height = size
    xy = canvas_grid(np.linspace(-400, 1120, 12), np.linspace(-300, 780, 10))
    frames = [canvas_to_camera(xy, np.full(len(xy), 5.0), width, height)]
    for shift in ((150, 0), (-150, 0), (0, 120), (0, -120)):
        frames.append(frames[0] + np.array([*shift, 0]) * 5.0 / width)
    tracks = camera_tracks(frames, width, height, faces=grid_faces(12, 10))
    video = render_tracking(tracks, num_frames=len(frames), fit=FIT)

    left, top, content_width, content_height = letterbox_rect(width, height, *FIT)
    content = np.zeros(video.shape[1:3], bool)
    content[top : top + content_height, left : left + content_width] = True
    assert video[:, ~content].max() == 0
    # The camera saw everything inside: covered at frame 0, exactly the rectangle fit_frames fills.
    assert (video[0].max(axis=-1) > 0).sum() == content.sum()
    assert (fit_frames(np.full((height, width, 3), 255, np.uint8), *FIT).max(axis=-1) > 0).sum() == content.sum()
    assert (fit_frames(np.full((height, width, 3), 255, np.uint8), *FIT)[content] == 255).all()


def test_a_vertex_outside_the_cameras_frame_at_the_first_frame_stays_black():
    # 1920 x 1080: the content is rows 37..441. Vertex 3 starts above the camera's frame (in the
    # top bar region of the canvas), then all move onto canvas pixel centres inside the content.
    width, height = 1920, 1080
    xy0 = np.array([[100.5, 100.5], [300.5, 300.5], [500.5, 120.5], [400.5, 10.5]])
    # (Vertex 3 ends below edge 1-2, so the two faces do not overlap: equally near overlapping
    # faces would make the pixel's colour a tie-break.)
    xy1 = np.array([[100.5, 100.5], [300.5, 300.5], [500.5, 120.5], [400.5, 260.5]])
    first = canvas_to_camera(xy0, np.full(4, 3.0), width, height)
    second = canvas_to_camera(xy1, np.full(4, 3.0), width, height)
    faces = np.array([[0, 1, 2], [1, 2, 3]])
    video = render_tracking(camera_tracks([first, second], width, height, faces=faces), num_frames=2, fit=FIT)
    assert (video[1, 260, 400] == 0).all()
    assert video[1, [100, 300, 120], [100, 300, 500]].max(axis=1).min() > 0


def test_points_mode_cotracker_colours_are_fitted_positions():
    width, height = 1920, 1080
    xy = canvas_grid(np.arange(60, 700, 80) + 0.5, np.arange(60, 420, 60) + 0.5)
    world = canvas_to_camera(xy, np.full(len(xy), 4.0), width, height)
    video = render_tracking(camera_tracks([world], width, height), "points", 1, fit=FIT, point_style="cotracker")[0]
    rows, columns = np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)
    np.testing.assert_array_equal(video[rows, columns, 0], np.floor(xy[:, 0] / FIT[0] * 255))
    np.testing.assert_array_equal(video[rows, columns, 1], np.floor(xy[:, 1] / FIT[1] * 255))
    assert video[:37].max() == 0 and video[442:].max() == 0


@pytest.mark.parametrize("mode", ["mesh", "points"])
def test_a_fit_to_the_tracks_own_size_is_the_plain_render(mode):
    width, height = FIT
    xy = canvas_grid(np.linspace(-50, 760, 14), np.linspace(-30, 500, 11))
    first = canvas_to_camera(xy, 4.0 + 0.3 * np.cos(np.arange(len(xy))), width, height)
    second = first + np.array([0.3, -0.1, 0.5])
    tracks = camera_tracks([first, second], width, height, faces=grid_faces(14, 11))
    plain = render_tracking(tracks, mode, 3)
    assert plain.max() > 0
    np.testing.assert_array_equal(render_tracking(tracks, mode, 3, fit=FIT), plain)


def test_the_preview_backend_samples_where_the_tracking_video_says():
    # A 1920 x 1080 reference with a red patch near the top (where the old fitted-after-rendering
    # colours were off by tens of pixels); a plane fills the camera's view and slides 90 canvas
    # pixels right and 40 down. The preview warps the letterboxed reference along the tracking
    # video: the patch must arrive where the plane took it.
    width, height = 1920, 1080
    xy = canvas_grid(np.linspace(-200, 920, 141), np.linspace(-200, 680, 111))
    first = canvas_to_camera(xy, np.full(len(xy), 5.0), width, height)
    shift = np.array([90, 40])
    second = canvas_to_camera(xy + shift, np.full(len(xy), 5.0), width, height)
    tracking = render_tracking(
        camera_tracks([first, second], width, height, faces=grid_faces(141, 111)), num_frames=2, fit=FIT
    )

    reference = np.full((height, width, 3), 90, np.uint8)
    reference[80:240, 600:840] = (255, 0, 0)  # canvas x 225..315, y 67..127 after the letterbox
    patch = (slice(67, 127), slice(225, 315))

    class Control:
        def should_stop(self) -> bool:
            return False

        def progress(self, phase: str, step: int, total: int) -> None:
            pass

    request = JobRequest(prompt="a red patch", image=reference, tracking=tracking)
    first_out, second_out = PreviewBackend().generate(request, Control())
    red = np.abs(second_out.astype(int) - (255, 0, 0)).max(axis=-1) < 40
    assert red[patch[0].start + 40 + 5 : patch[0].stop + 40 - 5, patch[1].start + 90 + 5 : patch[1].stop + 90 - 5].all()
    # Rows whose points were in the top bar at the first frame (canvas y < 37 there) show black,
    # points the camera did not see, and there the preview keeps the reference image.
    moved_away = red[37 + 40 + 1 : patch[0].stop - 5, patch[1].start + 5 : patch[1].start + 80]
    assert not moved_away.any()
    assert red.sum() == pytest.approx(60 * 90, rel=0.15)
    # At the first frame every covered pixel samples its own place: the patch stays put.
    red_first = np.abs(first_out.astype(int) - (255, 0, 0)).max(axis=-1) < 40
    assert red_first[patch[0].start + 5 : patch[0].stop - 5, patch[1].start + 5 : patch[1].stop - 5].all()
    assert red_first.sum() == pytest.approx(60 * 90, rel=0.15)


@pytest.mark.parametrize("fit", [(720,), (0, 480), (720.5, 480), "720x480", (True, 480)])
def test_a_bad_fit_is_named(fit):
    tracks = camera_tracks([np.array([[0, 0, 3.0], [1, 0, 3.0], [0, 1, 3.0]])], 64, 48, faces=np.array([[0, 1, 2]]))
    with pytest.raises(RenderError, match="fit must be"):
        render_tracking(tracks, num_frames=1, fit=fit)
