"""`das camera-move`: picture + depth file + DaS motion string -> tracks that `das render-tracking` draws."""

import numpy as np
import pytest
from PIL import Image

from das_core.cli import main
from das_core.tracking.camera_motion import camera_path
from das_core.tracking.tracks import Tracks


@pytest.fixture
def picture(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "picture.png")
    depth = np.full((48, 64), 4.0, np.float32)
    depth[12:36, 16:40] = 2.0
    np.save(tmp_path / "depth.npy", depth)
    return tmp_path


def test_camera_move_writes_the_reference_camera_path_and_renders(picture, capsys):
    out = picture / "tracks.npz"
    motion = "trans 0.1 0 -0.5 0 30; rot y 5 30 48"
    args = ["camera-move", str(picture / "picture.png"), "--depth", str(picture / "depth.npy"), "--motion", motion]
    assert main([*args, "-o", str(out), "--step", "2", "--fov", "50"]) == 0
    tracks = Tracks.load(out)
    assert (tracks.num_frames, tracks.width, tracks.height) == (49, 64, 48)
    np.testing.assert_allclose(tracks.world_to_camera, camera_path(motion), atol=1e-6)
    np.testing.assert_allclose(tracks.intrinsics[0, 0, 0], 32 / np.tan(np.radians(25)), rtol=1e-5)
    assert tracks.extra["camera_motion"] == motion and tracks.extra["parts"] == 2
    assert "in 2 parts" in capsys.readouterr().out
    video = picture / "tracking.mp4"
    assert main(["render-tracking", str(out), "-o", str(video), "--frames", "5", "--quiet"]) == 0
    assert video.stat().st_size > 0


def test_relative_depth_is_scaled_to_a_median_of_one(picture):
    out = picture / "tracks.npz"
    args = ["camera-move", str(picture / "picture.png"), "--depth", str(picture / "depth.npy"), "--relative"]
    assert main([*args, "--motion", "trans 0 0 1", "-o", str(out), "--step", "1"]) == 0
    assert np.median(Tracks.load(out).points[0, :, 2]) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--motion", "zoom 3"], "unknown camera motion 'zoom'"),
        (["--motion", "trans 0 0 1", "--depth", "wrong.npy"], "is 10x10, the image is 64x48"),
        (["--motion", "trans 0 0 1", "--depth", "missing.npy"], "cannot read depth file"),
    ],
)
def test_bad_input_exits_with_one_line(picture, capsys, extra, message):
    np.save(picture / "wrong.npy", np.ones((10, 10)))
    extra = [str(picture / a) if a.endswith(".npy") else a for a in extra]
    depth = [] if "--depth" in extra else ["--depth", str(picture / "depth.npy")]
    assert main(["camera-move", str(picture / "picture.png"), *depth, *extra, "-o", str(picture / "t.npz")]) == 1
    assert message in capsys.readouterr().err
