"""`das batch` against real local servers (preview backend, real ZeroMQ on 127.0.0.1, real video files):
a broken shot is reported while the others finish, and an interrupted batch resumes by job id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from das_core.cli import main
from das_core.tracking.render import render_tracking
from das_core.tracking.tracks import Tracks
from das_core.tracking.video import read_video
from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW
from das_core.wire.client import DasClient
from das_core.workflow.batch_spec import load_spec
from das_core.workflow.local_server import LocalServer
from tests.scenes.conftest import square_tracks

pytest.importorskip("bpy")  # the .blend shot exports through bpy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["shots"]


def server_job_ids(state_dir: Path) -> list[str]:
    """Every job a (restarted) server in `state_dir` has stored."""
    with LocalServer("preview", state_dir) as server, DasClient(server.address) as client:
        return sorted(job.job_id for job in client.list_jobs())


def test_batch_reports_a_broken_shot_and_finishes_the_others(tmp_path, capsys):
    (tmp_path / "broken.npz").write_bytes(b"this is not a tracks file")
    spec = tmp_path / "shots.toml"
    spec.write_text(f"""
[defaults]
steps = 10

[[shot]]
name = "walk"
blend = "{EXAMPLES / "walk_cycle" / "walk_cycle.blend"}"
range = "1:49"
prompt = "A mannequin walks."

[[shot]]
name = "broken"
tracks = "broken.npz"
image = "{EXAMPLES / "thrown_ball" / "reference.png"}"
prompt = "Nothing good."

[[shot]]
name = "ball"
tracks = "{EXAMPLES / "thrown_ball" / "tracks.npz"}"
image = "{EXAMPLES / "thrown_ball" / "reference.png"}"
prompt = "A ball bounces."
seed = 3
""")
    out = tmp_path / "out"
    assert main(["batch", str(spec), "--backend", "preview", "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "broken: FAILED: " in captured.out and "broken.npz: not an .npz archive" in captured.out
    assert "batch: 2 done, 0 already done, 1 failed" in captured.out

    shots = manifest_of(out)
    assert shots["broken"]["state"] == "failed" and "broken.npz" in shots["broken"]["error"]
    for name in ("walk", "ball"):
        entry = shots[name]
        # 49 frames at 24 fps: DaS (8 fps) makes every third, the others are in-betweened.
        assert entry["state"] == "done" and entry["job_id"].startswith(f"{name}-") and entry["num_frames"] == 17
        assert (entry["result_frames"], entry["result_fps"]) == (49, 24.0)
        assert entry["parameters"]["prompt"] in ("A mannequin walks.", "A ball bounces.")
        assert entry["parameters"]["steps"] == 10
        result = read_video(out / entry["outputs"]["result_video"])
        tracking = read_video(out / entry["outputs"]["tracking_video"])
        assert result.shape == (49, 480, 720, 3) and tracking.shape == (17, 480, 720, 3)
        comparison = read_video(out / entry["outputs"]["comparison"])[0]
        assert comparison.shape[1] > comparison.shape[0] > 160  # reference + 4 frames wide, 2 rows high
    assert shots["ball"]["parameters"]["seed"] == 3
    assert (out / "shots" / "walk" / "tracks.npz").is_file()
    assert read_video(out / shots["walk"]["outputs"]["reference"]).shape == (1, 480, 720, 3)

    # The tracking video is the renderer's output for every third exported frame (up to H.264 loss).
    exported = Tracks.load(out / "shots" / "walk" / "tracks.npz")
    assert exported.num_frames == 49  # every frame of the range
    expected = render_tracking(exported.take(range(0, 49, 3)), "mesh", 17, fit=(720, 480))
    tracking = read_video(out / "shots" / "walk" / "tracking.mp4")
    assert np.abs(tracking.astype(int) - expected).mean() < 2.0

    # A rerun skips what is done (no new jobs on the server) and reports the broken shot again.
    jobs_before = server_job_ids(out / "server")
    assert jobs_before == sorted([shots["walk"]["job_id"], shots["ball"]["job_id"]])
    assert main(["batch", str(spec), "--backend", "preview", "--out", str(out), "--no-progress"]) == 1
    assert "batch: 0 done, 2 already done, 1 failed" in capsys.readouterr().out
    assert server_job_ids(out / "server") == jobs_before
    assert {name: manifest_of(out)[name]["job_id"] for name in ("walk", "ball")} == {
        name: shots[name]["job_id"] for name in ("walk", "ball")
    }


def test_interrupted_batch_resumes_by_job_id_without_duplicates(tmp_path, capsys, small_shot):
    tracks, image = small_shot
    spec_path = tmp_path / "shots.toml"
    spec_path.write_text(
        "".join(
            f"""
[[shot]]
name = "{name}"
tracks = "{tracks}"
image = "{image}"
prompt = "Shot {name}."
"""
            for name in ("first", "second", "third")
        )
    )
    out = tmp_path / "out"
    with LocalServer("preview", tmp_path / "server") as server:
        command = [sys.executable, "-m", "das_core", "batch", str(spec_path), "--server", server.address,
                   "--out", str(out), "--no-progress"]  # fmt: skip
        batch = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:  # kill the batch as soon as the server has accepted the second shot's job
            deadline = time.monotonic() + 120
            with DasClient(server.address) as watcher:
                while time.monotonic() < deadline and batch.poll() is None:
                    shots = manifest_of(out) if (out / "manifest.json").exists() else {}
                    second = shots.get("second", {})
                    if second.get("state") == "submitted" and _server_knows(watcher, second["job_id"]):
                        break
                    time.sleep(0.02)
                else:
                    pytest.fail("the batch never got the second shot accepted")
        finally:
            os.kill(batch.pid, signal.SIGKILL)  # a crash: no chance to clean up
            batch.wait()
        killed = manifest_of(out)
        assert killed["first"]["state"] == "done" and killed["second"]["state"] == "submitted"
        assert "third" not in killed

        # As if the batch had also died between recording a job id and sending the job:
        spec = load_spec(spec_path)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["shots"]["third"] = {"state": "submitted", "job_id": "third-never-sent",
                                      "parameters": spec.shots[2].for_window(DAS_WINDOW).parameters(),
                                      "outputs": {}}  # fmt: skip
        (out / "manifest.json").write_text(json.dumps(manifest))

        assert main(["batch", str(spec_path), "--server", server.address, "--out", str(out), "--no-progress"]) == 0
        output = capsys.readouterr().out
        assert f"first: already done (job {killed['first']['job_id']})" in output
        assert f"second: resumed (job {killed['second']['job_id']})" in output
        assert "third: done (job third-never-sent)" in output

        shots = manifest_of(out)
        assert [shots[name]["state"] for name in ("first", "second", "third")] == ["done"] * 3
        assert shots["second"]["job_id"] == killed["second"]["job_id"]
        for entry in shots.values():
            assert read_video(out / entry["outputs"]["result_video"]).shape == (49, 480, 720, 3)
        with DasClient(server.address) as client:
            ids = sorted(job.job_id for job in client.list_jobs())
        assert ids == sorted([killed["first"]["job_id"], killed["second"]["job_id"], "third-never-sent"])


def _server_knows(client: DasClient, job_id: str) -> bool:
    from das_core.wire.client import ServerError

    try:
        client.status(job_id)
    except ServerError as error:
        assert error.code == "unknown_job"
        return False
    return True


def test_changed_parameters_start_the_shot_over(tmp_path, capsys, small_shot):
    tracks, image = small_shot
    spec_path = tmp_path / "shots.toml"
    shot = f"""
[[shot]]
name = "ball"
tracks = "{tracks}"
image = "{image}"
"""
    spec_path.write_text(shot + 'prompt = "A ball."\n')
    out = tmp_path / "out"
    with LocalServer("preview", tmp_path / "server") as server:
        arguments = ["batch", str(spec_path), "--server", server.address, "--out", str(out), "--no-progress"]
        assert main(arguments) == 0
        first_job = manifest_of(out)["ball"]["job_id"]
        spec_path.write_text(shot + 'prompt = "A red ball."\n')
        assert main(arguments) == 0
    entry = manifest_of(out)["ball"]
    assert entry["job_id"] != first_job and entry["previous_job_ids"] == [first_job]
    assert entry["parameters"]["prompt"] == "A red ball."
    assert "batch: 1 done, 0 already done" in capsys.readouterr().out


def test_unreachable_server_fails_before_any_work(tmp_path, capsys, small_shot):
    from das_core.workflow.local_server import free_loopback_port

    tracks, image = small_shot
    spec_path = tmp_path / "shots.toml"
    spec_path.write_text(f"""
[[shot]]
name = "ball"
tracks = "{tracks}"
image = "{image}"
prompt = "A ball."
""")
    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    arguments = ["batch", str(spec_path), "--server", address, "--out", str(tmp_path / "out"), "--timeout", "1"]
    started = time.monotonic()
    assert main(arguments) == 1
    assert time.monotonic() - started < 10
    error = capsys.readouterr().err
    assert f"no das server answered at {address} within 1 s" in error and error.count("\n") == 1
    assert not (tmp_path / "out" / "shots").exists()  # nothing exported or rendered for nothing


def test_local_server_that_cannot_start_says_why(tmp_path):
    from das_core.errors import DasError

    with pytest.raises(DasError, match="exited at start-up.*max-queue"):
        LocalServer("preview", tmp_path, extra_args=("--max-queue", "0")).start()


def test_local_server_retries_when_its_port_is_taken(tmp_path, monkeypatch):
    """Another program grabbing the probed port before the server binds it: start-up moves on.

    The race is made certain by handing out a port that a socket here already listens on.
    """
    import socket

    import das_core.workflow.local_server as local_server

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = iter([busy.getsockname()[1], local_server.free_loopback_port()])
        monkeypatch.setattr(local_server, "free_loopback_port", lambda: next(ports))
        with LocalServer("preview", tmp_path) as server, DasClient(server.address) as client:
            assert client.info().backend == "preview"
            assert server.address != f"tcp://127.0.0.1:{busy.getsockname()[1]}"
    assert "cannot listen on" in (tmp_path / "server.log").read_text()


def test_a_foreign_manifest_is_not_overwritten(tmp_path, capsys, small_shot):
    tracks, image = small_shot
    spec_path = tmp_path / "shots.toml"
    spec_path.write_text(f'[[shot]]\nname = "a"\ntracks = "{tracks}"\nimage = "{image}"\nprompt = "p"\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"something": "else"}')
    assert main(["batch", str(spec_path), "--server", "tcp://127.0.0.1:9", "--out", str(out), "--timeout", "1"]) == 1
    assert "not a das batch manifest" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == '{"something": "else"}'


def test_two_batches_never_share_an_output_folder(tmp_path, capsys, small_shot):
    fcntl = pytest.importorskip("fcntl")  # the lock is POSIX-only

    tracks, image = small_shot
    spec_path = tmp_path / "shots.toml"
    spec_path.write_text(f'[[shot]]\nname = "a"\ntracks = "{tracks}"\nimage = "{image}"\nprompt = "p"\n')
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "batch.lock", "w") as held:  # as a running `das batch` holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["batch", str(spec_path), "--backend", "preview", "--out", str(out)]) == 1
    assert "another das batch is writing to" in capsys.readouterr().err
    assert not (out / "server").exists()  # refused before starting a second server on the same state


def test_unset_sampling_follows_the_servers_model_and_set_values_stay(tmp_path, capsys, small_shot):
    pytest.importorskip("torch")
    _, image = small_shot
    tracks = tmp_path / "long.npz"
    square_tracks(121, fps=24.0).save(tracks)  # Wan-Move (16 fps) makes 81 frames of it: one whole window
    spec_path = tmp_path / "shots.toml"
    spec_path.write_text(
        f"""
[defaults]
frames = "model"

[[shot]]
name = "unset"
tracks = "{tracks}"
image = "{image}"
prompt = "A square slides."

[[shot]]
name = "set"
tracks = "{tracks}"
image = "{image}"
prompt = "A square slides."
steps = 2
guidance = 3.5
fps = 10
"""
    )
    out = tmp_path / "out"
    with LocalServer("tiny", tmp_path / "server", extra_args=("--model", "wan-move")) as server:
        assert main(["batch", str(spec_path), "--server", server.address, "--out", str(out), "--no-progress"]) == 0
        shots = manifest_of(out)
        with DasClient(server.address) as client:
            sent = {name: client.status(shots[name]["job_id"]) for name in shots}
    unset, chosen = shots["unset"]["parameters"], shots["set"]["parameters"]
    assert (unset["steps"], unset["guidance"], unset["fps"]) == (40, 5.0, None)  # Wan-Move's; fps: the result's
    assert (chosen["steps"], chosen["guidance"], chosen["fps"]) == (2, 3.5, 10.0)
    assert (sent["unset"].steps, sent["unset"].metadata["fps"]) == (40, WAN_MOVE_WINDOW.fps)  # what the server got
    assert (sent["set"].steps, sent["set"].metadata["fps"]) == (2, WAN_MOVE_WINDOW.fps)  # the model's rate, always
    assert (shots["unset"]["result_fps"], shots["set"]["result_fps"]) == (WAN_MOVE_WINDOW.fps, 10.0)
    assert shots["unset"]["result_frames"] == shots["set"]["result_frames"] == 81


def test_changing_what_the_result_holds_rewrites_it_without_a_new_job(tmp_path, capsys, small_shot):
    tracks, image = small_shot
    square_tracks(13, faces=False).save(tmp_path / "points.npz")
    spec_path = tmp_path / "shots.toml"
    shot = f"""
[[shot]]
name = "square"
tracks = "{tracks}"
image = "{image}"
prompt = "A square slides."
"""
    points = f"""
[[shot]]
name = "points"
tracks = "{tmp_path / "points.npz"}"
image = "{image}"
prompt = "Points."
"""
    spec_path.write_text(shot + 'frames = "model"\n' + points)
    out = tmp_path / "out"
    with LocalServer("preview", tmp_path / "server") as server:
        arguments = ["batch", str(spec_path), "--server", server.address, "--out", str(out), "--no-progress"]
        assert main(arguments) == 1
        output = capsys.readouterr().out
        assert "points: FAILED: " in output and "has points only, no faces" in output
        assert 'use frames = "model" for the model\'s frames only' in output
        first = manifest_of(out)["square"]
        assert (first["result_frames"], first["result_fps"]) == (17, 8.0)
        assert read_video(out / first["outputs"]["result_video"]).shape == (17, 480, 720, 3)

        spec_path.write_text(shot + 'frames = "every"\n')
        assert main(arguments) == 0
        assert f"square: rewritten (job {first['job_id']})" in capsys.readouterr().out
        with DasClient(server.address) as client:
            assert [job.job_id for job in client.list_jobs()] == [first["job_id"]]  # no new job
    entry = manifest_of(out)["square"]
    assert (entry["state"], entry["job_id"], entry["parameters"]["frames"]) == ("done", first["job_id"], "every")
    assert (entry["result_frames"], entry["result_fps"]) == (49, 24.0)
    assert read_video(out / entry["outputs"]["result_video"]).shape == (49, 480, 720, 3)
