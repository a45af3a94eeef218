"""`das dataset synth` end to end: real Blender (bpy module) renders, real tracking videos, real files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from das_core.errors import DasError
from das_core.tracking.video import read_video
from das_core.train.check import check_dataset
from das_core.train.synth import SynthOptions, synthesise

W, H, F = 96, 64, 5


def _synth_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "das_core", "dataset", "synth", *args], capture_output=True, text=True, timeout=300
    )


def test_examples_end_to_end_and_resumable(tmp_path):
    out = tmp_path / "data"
    flags = ["--examples", "--out", str(out), "--frames", str(F), "--width", str(W), "--height", str(H)]
    first = _synth_cli(*flags)
    assert first.returncode == 0, first.stderr[-2000:]
    scenes = sorted(path.stem for path in (out / "scenes").glob("*.blend"))
    assert scenes == ["camera_orbit", "thrown_ball", "walk_cycle"]
    prompts = (out / "prompt.txt").read_text().splitlines()
    assert prompts == [f"A 3D animated scene: {name.replace('_', ' ')}." for name in scenes]
    report = check_dataset(out, image_column="images.txt", num_frames=F, width=W, height=H)
    assert report.ok, [str(p) for p in report.problems]

    again = _synth_cli(*flags)  # resumable: everything is already there
    assert again.returncode == 0 and "wrote 0 new samples" in again.stdout
    assert len((out / "videos.txt").read_text().splitlines()) == 3


def test_sample_contents_match_the_ground_truth(ball_scene, tmp_path):
    from das_core.tracking.render import render_tracking
    from das_core.tracking.tracks import Tracks

    written = synthesise(
        [ball_scene], tmp_path, SynthOptions(num_frames=F, width=W, height=H, variants=2), progress=False
    )
    assert [sample.index for sample in written] == [0, 1]
    video = read_video(tmp_path / "videos" / "00000.mp4")
    tracking = read_video(tmp_path / "tracking" / "00000_tracking.mp4")
    image = read_video(tmp_path / "images" / "00000.png")[0]
    assert video.shape == tracking.shape == (F, H, W, 3)
    assert np.abs(image.astype(int) - video[0]).mean() < 6  # the image is the first frame (mp4 is lossy)
    expected = render_tracking(Tracks.load(tmp_path / "tracks" / "00000.npz"), mode="mesh", num_frames=F)
    assert np.abs(tracking.astype(int) - expected).mean() < 3

    # the second variant has another background colour; both are recorded in the manifest
    records = [json.loads(line) for line in (tmp_path / "synth.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == [0, 1]
    assert records[0]["background"] != records[1]["background"]
    other = read_video(tmp_path / "videos" / "00001.mp4")
    assert np.abs(other[0, 0, 0].astype(int) - video[0, 0, 0]).max() > 3  # top-left corner is sky


@pytest.mark.parametrize(
    "setting, prompt",
    [
        ("bpy.context.scene['das_prompt'] = 'a grey cube on a  table'", "a grey cube on a table"),
        ("bpy.context.scene['das'] = {'prompt': 'the add-on panel prompt'}", "the add-on panel prompt"),
        ("bpy.data.texts.new('prompt').write('a cube\\nturning')", "a cube turning"),
    ],
)
def test_scene_text_becomes_the_prompt(tmp_path, setting, prompt):
    script = (
        "import bpy, sys\n"
        "bpy.ops.wm.read_homefile(app_template='')\n"
        f"{setting}\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])\n"
    )
    blend = tmp_path / "cube.blend"
    subprocess.run([sys.executable, "-c", script, str(blend)], check=True, capture_output=True, timeout=120)
    written = synthesise([blend], tmp_path / "data", SynthOptions(num_frames=F, width=W, height=H), progress=False)
    assert written[0].prompt == prompt


def test_bad_options_are_refused(ball_scene, tmp_path):
    with pytest.raises(DasError, match="Workbench cannot show an HDRI"):
        synthesise([ball_scene], tmp_path, SynthOptions(background="hdri", hdri_dir=tmp_path))
    with pytest.raises(DasError, match="not found"):
        synthesise([tmp_path / "nope.blend"], tmp_path, SynthOptions())
    (tmp_path / "prompt.txt").write_text("one\n")
    with pytest.raises(DasError, match="disagree"):
        synthesise([ball_scene], tmp_path, SynthOptions())


def _write_hdr(path, rgbe: bytes, width: int = 4, height: int = 2) -> None:
    """A flat Radiance .hdr; scanlines narrower than 8 pixels are stored flat (no run-length encoding)."""
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    path.write_bytes(header + rgbe * (width * height))


def test_hdri_background_with_cycles(ball_scene, tmp_path):
    hdris = tmp_path / "hdris"
    hdris.mkdir()
    _write_hdr(hdris / "red.hdr", bytes([200, 10, 10, 128]))  # RGBE: strongly red, exponent 0
    written = synthesise(
        [ball_scene],
        tmp_path / "data",
        SynthOptions(
            engine="cycles", background="hdri", hdri_dir=hdris, num_frames=F, width=W, height=H, render_samples=2
        ),
        progress=False,
    )
    assert len(written) == 1
    record = json.loads((tmp_path / "data" / "synth.jsonl").read_text())
    assert record["background"] == "red.hdr"
    sky = read_video(tmp_path / "data" / "images" / "00000.png")[0, :4, :4].reshape(-1, 3).mean(axis=0)
    assert sky[0] > 2 * max(sky[1], sky[2]), sky  # the sky shows the red environment
