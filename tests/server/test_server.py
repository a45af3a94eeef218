"""The server over real ZeroMQ sockets on 127.0.0.1 (server in a thread of this process)."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from das_core.wire.client import Accepted, DasClient, Done, Frame, JobFailed, Progress, ServerError, ServerUnavailable
from das_core.wire.protocol import VERSION, ErrorReply, Hello, Limits, decode, encode, frame_digest, result_checksum
from tests.server.conftest import GatedPreview, ThreadServer, make_request, preview_frames


def _collect(events):
    frames, other = {}, []
    for event in events:
        if isinstance(event, Frame):
            frames[event.index] = event.image
        else:
            other.append(event)
    return frames, other


def test_preview_end_to_end_frames_equal_the_backend(preview_server):
    request = make_request(1)
    expected = preview_frames(request)
    with DasClient(preview_server.address) as client:
        info = client.info()
        assert (info.version, info.backend, info.preview) == (VERSION, "preview", True)
        job_id = client.submit(request)
        frames, other = _collect(client.events(job_id, timeout=30))
    assert isinstance(other[0], Accepted)
    assert any(isinstance(e, Progress) and e.phase == "warp" and e.total == 49 for e in other)
    done = other[-1]
    assert isinstance(done, Done) and done.num_frames == 49
    assert done.metadata["preview"] is True and done.metadata["backend"] == "preview"
    assert done.checksum == result_checksum([frame_digest(f) for f in expected])
    for index, frame in enumerate(expected):
        np.testing.assert_array_equal(frames[index], frame)


def test_status_list_fetch_and_unknown_jobs(preview_server):
    with DasClient(preview_server.address) as client:
        job_id = client.submit(make_request(2, job_id="known-job"))
        assert job_id == "known-job"
        first, _ = _collect(client.events(job_id, timeout=30))
        status = client.status(job_id)
        assert status.state == "done" and status.frames_done == 49
        assert [job.job_id for job in client.list_jobs()] == ["known-job"]
        assert client.status().jobs == {"done": 1}
        again, other = _collect(client.fetch(job_id, timeout=30))
        assert isinstance(other[-1], Done) and sorted(again) == list(range(49))
        np.testing.assert_array_equal(again[48], first[48])
        with pytest.raises(ServerError, match="no job nope"):
            list(client.fetch("nope", timeout=10))
        with pytest.raises(ServerError, match="no job nope"):
            client.status("nope")


def test_a_retried_submit_runs_once(preview_server):
    request = make_request(3, job_id="same-id")
    with DasClient(preview_server.address) as client:
        client.submit(request)
        client.submit(request)  # what a client does after a reconnect
        _, other = _collect(client.events("same-id", timeout=30))
        assert isinstance(other[-1], Done)
        assert client.status().jobs == {"done": 1}
        taken = make_request(4, job_id="same-id")
        with pytest.raises(ServerError, match="already used"):
            client.submit(taken)


def test_eight_clients_five_jobs_each_none_lost_or_duplicated(preview_server):
    results, errors = {}, []

    def artist(number: int) -> None:
        try:
            with DasClient(preview_server.address, name=f"artist-{number}", timeout=30) as client:
                ids = [client.submit(make_request(number * 10 + k, job_id=f"a{number}-j{k}")) for k in range(5)]
                for job_id in ids:
                    frames, other = _collect(client.events(job_id, timeout=60))
                    results[job_id] = (frames, other[-1])
        except Exception as error:  # reported below with the artist's number
            errors.append((number, error))

    threads = [threading.Thread(target=artist, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len(results) == 40
    for number in range(8):
        for k in range(5):
            frames, done = results[f"a{number}-j{k}"]
            expected = preview_frames(make_request(number * 10 + k))
            assert isinstance(done, Done) and sorted(frames) == list(range(49))
            assert done.checksum == result_checksum([frame_digest(f) for f in expected])
    with DasClient(preview_server.address) as client:
        assert client.status().jobs == {"done": 40}


def test_hostile_input_is_answered_and_others_keep_being_served(preview_server):
    context = zmq.Context.instance()
    attacker = context.socket(zmq.DEALER)
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.setsockopt(zmq.SNDHWM, 20_000)
    attacker.connect(preview_server.address)
    hostile = [
        [b"\x00\x01garbage"],
        [msgpack.packb({"v": VERSION, "type": "submit"})[:-3]],  # truncated msgpack
        [msgpack.packb({"v": VERSION, "type": "cancel", "job_id": ["x"]})],  # wrong type
        [msgpack.packb({"v": VERSION, "type": "explode"})],  # unknown type
        [msgpack.packb({"v": 0, "type": "hello"})],  # wrong version
        [
            msgpack.packb(
                {
                    "v": VERSION,
                    "type": "submit",
                    "job_id": "x",
                    "prompt": "p",
                    "seed": 1,
                    "steps": 1,
                    "guidance": 1.0,
                    "fps": 8.0,
                    "image": {"shape": [1 << 30, 1 << 30, 3], "codec": "raw"},
                    "tracking": [{"shape": [2, 2, 3], "codec": "raw"}],
                }
            ),
            b"",
            b"",
        ],  # huge declared size
        [msgpack.packb({"v": VERSION, "type": "accepted", "job_id": "x", "position": 0})],  # a server message
    ]
    for parts in hostile:
        attacker.send_multipart(parts)
    codes = []
    for _ in hostile:
        assert attacker.poll(5000)
        reply, _ = decode(attacker.recv_multipart())
        assert isinstance(reply, ErrorReply)
        codes.append(reply.code)
    assert codes == ["bad_message", "bad_message", "bad_message", "unknown_type", "version", "limit", "unexpected"]

    for index in range(10_000):  # a burst
        attacker.send(b"\xff" * (index % 50))
    started = time.monotonic()
    with DasClient(preview_server.address, timeout=20) as client:
        assert client.info().backend == "preview"
        job_id = client.submit(make_request(5))
        _, other = _collect(client.events(job_id, timeout=30))
        assert isinstance(other[-1], Done)
    assert time.monotonic() - started < 20
    answered = 0
    while attacker.poll(500):
        message, _ = decode(attacker.recv_multipart())
        assert isinstance(message, ErrorReply)
        answered += 1
    assert answered > 0  # each answered while it could take replies, the rest dropped
    attacker.close()


def test_cancel_queued_and_running_jobs(tmp_path):
    backend = GatedPreview()
    server = ThreadServer(tmp_path / "state", instance=backend)
    try:
        with DasClient(server.address) as client:
            running = client.submit(make_request(1, job_id="runs"))
            queued = client.submit(make_request(2, job_id="waits"))
            deadline = time.monotonic() + 10
            while client.status(running).state != "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert client.status(queued).position == 1
            assert client.cancel(queued).state == "cancelled"
            assert client.cancel(running).state == "cancelling"
            _, other = _collect(client.events(running, timeout=30))
            assert isinstance(other[-1], JobFailed) and other[-1].code == "cancelled"
            _, other = _collect(client.events(queued, timeout=30))
            assert isinstance(other[-1], JobFailed) and other[-1].code == "cancelled"
            assert client.status(running).state == "cancelled"
            assert client.cancel(running).state == "cancelled"  # cancelling twice is harmless
            with pytest.raises(ServerError, match="no job"):
                client.cancel("unknown")
            backend.gate.set()
            later = client.submit(make_request(3))
            assert isinstance(list(client.events(later, timeout=30))[-1], Done)  # the worker goes on
    finally:
        server.stop()


def test_queue_limits_per_client_and_in_total(tmp_path):
    server = ThreadServer(tmp_path / "state", instance=GatedPreview(), max_queue=3, max_queue_per_client=2)
    try:
        with DasClient(server.address, name="greedy") as greedy, DasClient(server.address, name="other") as other:
            greedy.submit(make_request(1))
            greedy.submit(make_request(2))
            with pytest.raises(ServerError, match="already have 2 jobs") as error:
                greedy.submit(make_request(3))
            assert error.value.code == "client_queue_full"
            other.submit(make_request(4))
            with pytest.raises(ServerError, match="queue is full"):
                other.submit(make_request(5))
    finally:
        server.stop()


def test_disconnect_mid_stream_then_fetch_later(preview_server):
    request = make_request(6, height=240, width=360)
    client = DasClient(preview_server.address)
    job_id = client.submit(request)
    for event in client.events(job_id, timeout=30):
        if isinstance(event, Frame):
            break
    client.close()  # the artist closes Blender mid-stream
    with DasClient(preview_server.address) as later:
        frames, other = _collect(later.fetch(job_id, timeout=30))
    expected = preview_frames(request)
    assert isinstance(other[-1], Done) and len(frames) == 49
    assert other[-1].checksum == result_checksum([frame_digest(f) for f in expected])


def test_no_server_raises_server_unavailable_within_the_timeout():
    from tests.server.conftest import free_port

    started = time.monotonic()
    with DasClient(f"tcp://127.0.0.1:{free_port()}", timeout=0.5) as client:
        with pytest.raises(ServerUnavailable, match="--backend preview"):
            client.info()
        with pytest.raises(ServerUnavailable):
            client.submit(make_request(0, frames=2))
    assert time.monotonic() - started < 3.0


def test_clean_shutdown_puts_the_running_job_back_and_a_restart_finishes_it(tmp_path):
    state = tmp_path / "state"
    gated = ThreadServer(state, instance=GatedPreview())
    request = make_request(7, job_id="interrupted")
    with DasClient(gated.address) as client:
        client.submit(request)
        deadline = time.monotonic() + 10
        while client.status("interrupted").state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    gated.stop()  # what SIGINT/SIGTERM do
    restarted = ThreadServer(state)
    try:
        with DasClient(restarted.address) as client:
            _frames, other = _collect(client.fetch("interrupted", timeout=30))
        expected = preview_frames(request)
        assert isinstance(other[-1], Done)
        assert other[-1].checksum == result_checksum([frame_digest(f) for f in expected])
    finally:
        restarted.stop()


def test_a_frame_over_the_size_limit_drops_only_that_connection(preview_server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(preview_server.address)
    sock.send_multipart([encode(Hello("big"))[0], b"\0" * (9 << 20)])
    assert not sock.poll(500)  # ZMQ_MAXMSGSIZE: disconnected, nothing decoded, nothing answered
    sock.close()
    with DasClient(preview_server.address) as client:
        assert client.info().limits.max_part_bytes == 8 << 20


def test_submit_is_resent_until_a_late_server_accepts_it_once(tmp_path):
    from tests.server.conftest import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    servers = []
    timer = threading.Timer(1.5, lambda: servers.append(ThreadServer(tmp_path / "state", bind=address)))
    timer.start()
    try:
        with DasClient(address, timeout=15) as client:
            started = time.monotonic()
            job_id = client.submit(make_request(8, job_id="late"))  # first try times out after 1 s
            assert time.monotonic() - started > 1.0
            assert isinstance(list(client.events(job_id, timeout=30))[-1], Done)
            assert client.status().jobs == {"done": 1}
    finally:
        timer.join()
        for server in servers:
            server.stop()


class _FirstRunDiffers(GatedPreview):
    """Preview frames + 1 for three frames, then hangs until stopped: a run the server dies in."""

    def generate(self, request, control):
        for index, frame in enumerate(super().generate(request, control)):
            if index == 3:
                while not control.should_stop():
                    time.sleep(0.02)
                return
            yield frame + 1


def test_frames_of_an_interrupted_run_are_replaced_by_the_rerun(tmp_path):
    from tests.server.conftest import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    first_backend = _FirstRunDiffers()
    first_backend.gate.set()
    first = ThreadServer(tmp_path / "state", instance=first_backend, bind=address)
    request = make_request(11, job_id="rerun")
    frames = {}
    with DasClient(address, timeout=30) as client:
        client.submit(request)
        events = client.events("rerun", timeout=60)
        for event in events:
            if isinstance(event, Frame):
                frames[event.index] = event.image
                if len(frames) == 3:
                    break
        first.stop()  # the job goes back to the queue with three frames already sent
        second = ThreadServer(tmp_path / "state", bind=address)
        try:
            for event in events:  # the client notices the silence and asks the new server
                if isinstance(event, Frame):
                    frames[event.index] = event.image
            assert isinstance(event, Done)
        finally:
            second.stop()
    expected = preview_frames(request)
    assert len(frames) == 49
    for index in (0, 2, 48):
        np.testing.assert_array_equal(frames[index], expected[index])


def test_a_submit_over_a_server_limit_is_refused_to_the_waiting_client(tmp_path):
    """The refusal must carry the request number, or the client waits, retries and blames the network."""
    server = ThreadServer(tmp_path / "state", limits=Limits(max_steps=20))
    try:
        with DasClient(server.address, timeout=5) as client:
            started = time.monotonic()
            with pytest.raises(ServerError, match="steps is 30; use 1 to 20"):
                client.submit(make_request(1, steps=30))
            assert time.monotonic() - started < 3
    finally:
        server.stop()
