"""Jobs of several windows through real servers: one stream of frames, each window starting from the
previous one's last frame, one progress bar, seams in the metadata, cancel between windows, refusals."""

from __future__ import annotations

import threading
from dataclasses import replace

import msgpack
import numpy as np
import pytest
import zmq

from das_core.tracking.video import model_frame_indices
from das_core.wire.client import DasClient, Done, Frame, JobFailed, Progress, ServerError
from das_core.wire.protocol import ErrorReply, Limits, Submit, decode, encode
from das_server.backends.sleep import SleepBackend
from tests.server.conftest import NoStop, Recording, ThreadServer, make_request


def _frames_and_rest(events) -> tuple[list[np.ndarray], list]:
    frames, other = [], []
    for event in events:
        if isinstance(event, Frame):
            assert event.index == len(frames)  # in order, each once
            frames.append(event.image)
        else:
            other.append(event)
    return frames, other


def test_three_windows_of_the_tiny_model_stream_as_one_job(tmp_path):
    pytest.importorskip("torch")
    from das_server.backends import load_backend

    backend = Recording(load_backend("tiny", model="das", device=None, offload="none"))
    server = ThreadServer(tmp_path / "state", instance=backend)
    try:
        request = make_request(4, height=40, width=60, frames=15, steps=1, windows=(6, 5, 4))
        with DasClient(server.address, timeout=30) as client:
            frames, other = _frames_and_rest(client.events(client.submit(request), timeout=300))
    finally:
        server.stop()
    done = other[-1]
    assert isinstance(done, Done) and done.num_frames == len(frames) == 15 - 2
    # Each window made exactly its own frames (the short ones were not stretched to the model's 49).
    assert [len(made) for made in backend.made] == [6, 5, 4]
    assert [len(window.tracking) for window in backend.requests] == [6, 5, 4]
    np.testing.assert_array_equal(backend.requests[1].tracking, request.tracking[6:11])
    # Window k + 1 starts from the last frame sent for window k; its own first frame is not sent.
    np.testing.assert_array_equal(backend.requests[0].image, request.image)
    np.testing.assert_array_equal(backend.requests[1].image, frames[5])
    np.testing.assert_array_equal(backend.requests[2].image, frames[9])
    np.testing.assert_array_equal(np.stack(frames[6:10]), np.stack(backend.made[1][1:]))
    np.testing.assert_array_equal(frames[12], backend.made[2][-1])

    assert done.metadata["windows"] == [6, 5, 4]
    assert [seam["frame"] for seam in done.metadata["seams"]] == [6, 10]
    colours = np.stack(frames).reshape(len(frames), -1, 3).mean(axis=1)
    jumps = np.linalg.norm(np.diff(colours, axis=0), axis=1)
    assert done.metadata["seams"][0]["colour_jump"] == pytest.approx(jumps[5], abs=1e-3)
    assert done.metadata["colour_jump_median"] == pytest.approx(np.median(np.delete(jumps, [5, 9])), abs=1e-3)
    # One bar: denoising steps count on across windows, out of all three windows' steps.
    denoise = [(event.step, event.total) for event in other if isinstance(event, Progress) and event.phase == "denoise"]
    assert denoise[-1] == (3, 3) and [step for step, _ in denoise] == sorted(step for step, _ in denoise)
    decode_steps = [(e.step, e.total) for e in other if isinstance(e, Progress) and e.phase == "decode"]
    assert decode_steps == [(1, 3), (2, 3), (3, 3)]


def test_a_short_window_holds_its_last_frame_and_gets_its_own_frames_back():
    pytest.importorskip("torch")
    from das_server.backends.tiny import TinyBackend

    assert model_frame_indices(3, 6).tolist() == [0, 1, 2, 2, 2, 2]
    assert model_frame_indices(5, 3).tolist() == [0, 2, 4]  # longer: sampled, as before
    backend = TinyBackend()
    pipe, seen = backend.pipe, {}

    def recording_pipe(**kwargs):
        seen.update(kwargs)
        return pipe(**kwargs)

    backend.pipe = recording_pipe
    request = make_request(5, height=40, width=60, frames=4, steps=1)
    frames = list(backend.generate(request, NoStop()))
    assert len(frames) == 4 and frames[0].shape == (40, 60, 3)
    tracking = np.asarray(seen["tracking_video"])
    assert seen["num_frames"] == len(tracking) == 49
    assert (tracking[3:] == tracking[3]).all() and not (tracking[2] == tracking[3]).all()


class HeldAfterItsFrames(SleepBackend):
    """The sleep backend, recording each window it is given; after a window's frames it says so and waits for
    the job to be cancelled (so the cancel certainly lands between two windows)."""

    def __init__(self) -> None:
        self.windows: list = []
        self.window_done = threading.Event()

    def generate(self, request, control):
        self.windows.append(request)
        yield from super().generate(request, control)
        self.window_done.set()
        for _ in range(1000):
            if control.should_stop():
                return
            threading.Event().wait(0.01)


def test_a_cancel_between_windows_starts_no_other_window(tmp_path):
    backend = HeldAfterItsFrames()
    server = ThreadServer(tmp_path / "state", instance=backend)
    try:
        with DasClient(server.address, timeout=30) as client:
            job_id = client.submit(make_request(1, height=24, width=36, frames=9, steps=2, windows=(5, 4)))
            assert backend.window_done.wait(30)
            assert client.cancel(job_id).state == "cancelling"
            frames, other = _frames_and_rest(client.events(job_id, timeout=30))
            assert isinstance(other[-1], JobFailed) and other[-1].code == "cancelled"
            assert client.status(job_id).state == "cancelled"
    finally:
        server.stop()
    assert len(backend.windows) == 1  # the second window never started
    assert len(frames) <= 5


def test_windows_beyond_the_servers_limits_are_refused_and_it_keeps_serving(tmp_path):
    server = ThreadServer(tmp_path / "state", backend="sleep", limits=Limits(max_frames=5, max_windows=2))
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    refusals = {
        "too many": ([3, 3, 3], "the job has 3 windows; this server runs at most 2 per job"),
        "too long": ([6, 3], "window 0 has 6 frames; each window of a job of several takes 2 to 5"),
        "not summing": ([4, 4], "the windows add up to 8 frames but the tracking video has 9"),
        "one frame": ([1, 8], "window 0 has 1 frames"),
    }
    try:
        valid = encode(Submit.from_request(make_request(1, height=24, width=36, frames=9, windows=(5, 4)), "w1"), 1)
        for number, (windows, _) in enumerate(refusals.values()):
            header = {**msgpack.unpackb(valid[0]), "windows": windows, "req": number}
            socket.send_multipart([msgpack.packb(header), *valid[1:]])
        for windows, message in refusals.values():
            assert socket.poll(10_000)
            reply, _ = decode(socket.recv_multipart())
            assert isinstance(reply, ErrorReply) and message in reply.message, (windows, reply)
        with DasClient(server.address, timeout=30) as client:  # the server goes on, and runs a valid job
            request = make_request(2, height=24, width=36, frames=9, steps=2, windows=(5, 4))
            frames, other = _frames_and_rest(client.events(client.submit(request), timeout=60))
            assert client.status().jobs == {"done": 1}
    finally:
        socket.close()
        server.stop()
    assert isinstance(other[-1], Done) and other[-1].metadata["windows"] == [5, 4]
    # The sleep backend returns each window's control: window 1's first frame (the shared one) is not sent.
    np.testing.assert_array_equal(np.stack(frames), request.tracking[[0, 1, 2, 3, 4, 6, 7, 8]])


def test_a_retried_submit_must_have_the_same_windows(tmp_path):
    server = ThreadServer(tmp_path / "state", backend="sleep")
    try:
        with DasClient(server.address, timeout=30) as client:
            first = make_request(3, height=24, width=36, frames=9, steps=1, windows=(5, 4), job_id="shot")
            client.submit(first)
            client.submit(first)  # a retry: the same job
            assert isinstance(list(client.events("shot", timeout=30))[-1], Done)
            with pytest.raises(ServerError, match="already used"):
                client.submit(make_request(3, height=24, width=36, frames=9, steps=1, windows=(4, 5), job_id="shot"))
            with pytest.raises(ServerError, match="already used"):
                client.submit(make_request(3, height=24, width=36, frames=9, steps=1, job_id="shot"))
            assert client.status().jobs == {"done": 1}
    finally:
        server.stop()


def test_max_windows_comes_from_the_command_line():
    from das_core.errors import DasError
    from das_server.__main__ import build_parser, config_from_args

    def limits(*args: str) -> Limits:
        return config_from_args(build_parser().parse_args(["--backend", "sleep", *args])).limits

    assert limits().max_windows == 16 and limits("--max-windows", "3").max_windows == 3
    with pytest.raises(DasError, match="--max-frames 49 times --max-windows 100 is 4900 frames a job"):
        limits("--max-windows", "100")
    with pytest.raises(DasError, match="--max-windows must be at least 1"):
        limits("--max-windows", "0")


def test_a_state_dir_from_before_windows_opens_and_its_jobs_have_one_window(tmp_path):
    import sqlite3

    from das_server.job_store import JobStore

    single = Submit.from_request(make_request(1, frames=3), "old")
    store = JobStore(tmp_path)
    store.add(single, encode(single), "name:me")
    store.close()
    database = sqlite3.connect(tmp_path / "jobs.sqlite", isolation_level=None)
    database.execute("ALTER TABLE jobs DROP COLUMN turn")  # the added columns come back in another order
    database.execute("ALTER TABLE jobs DROP COLUMN windows")
    database.close()
    store = JobStore(tmp_path)
    shot = Submit.from_request(make_request(1, frames=9, windows=(5, 4)), "new")
    store.add(shot, encode(shot), "name:me")
    old, new = store.get("old"), store.get("new")
    assert old is not None and new is not None and (old.windows, new.windows) == (None, "[5, 4]")
    assert old.same_job(single) and new.same_job(shot) and not old.same_job(replace(single, windows=(2, 1)))
    assert [job.job_id for job in store.queue()] == ["old", "new"]
    store.close()
