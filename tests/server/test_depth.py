"""Depth requests: the wire form, and a real server answering with a tiny Depth Anything model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from das_core.wire.client import DasClient, ServerError
from das_core.wire.protocol import (
    DepthRequest,
    DepthResult,
    EncodedImage,
    ErrorReply,
    ProtocolError,
    decode,
    encode,
)
from das_server.__main__ import build_parser, config_from_args
from das_server.depth import DEFAULT_DEPTH_MODEL, DepthEstimator, depth_from_disparity
from tests.server.conftest import GatedPreview, ThreadServer, make_request
from tests.server.tiny_depth import save_tiny_depth_model

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory):
    return save_tiny_depth_model(tmp_path_factory.mktemp("tiny-depth"))


@pytest.fixture
def depth_server(tmp_path, tiny_depth):
    backend = GatedPreview()  # holds its job: depth must not wait behind it
    server = ThreadServer(tmp_path / "state", instance=backend, depth_model=str(tiny_depth))
    yield server, backend
    backend.gate.set()
    server.stop()


def image(height: int = 30, width: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def ask(address: str, message) -> object:
    """Send one raw message and return the decoded answer."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(encode(message, 7))
        assert socket.poll(60_000), "no answer"
        answer, req = decode(socket.recv_multipart())
    finally:
        socket.close()
    assert req == 7
    return answer


def test_depth_result_round_trips_as_a_float32_frame():
    depth = np.random.default_rng(1).random((5, 7), dtype=np.float32) + 0.5
    parts = encode(DepthResult(depth, "some/model", False, 55.5), 3)
    assert len(parts) == 2 and len(parts[1]) == 5 * 7 * 4
    result, req = decode(parts)
    assert req == 3 and isinstance(result, DepthResult)
    assert (result.model, result.metric, result.fov_deg) == ("some/model", False, 55.5)
    assert result.depth.dtype == np.float32 and np.array_equal(result.depth, depth)
    with pytest.raises(ProtocolError, match="holds 136 bytes"):
        decode([parts[0], parts[1][:-4]])
    request, _ = decode(encode(DepthRequest(image())), decode_images=False)
    assert isinstance(request.image, EncodedImage) and request.image.decode().shape == (30, 40, 3)


def test_the_server_answers_with_the_models_depth_while_a_job_runs(depth_server, tiny_depth):
    server, _ = depth_server
    picture = image()
    with DasClient(server.address, timeout=20) as client:
        client.submit(make_request(1))  # held by the gated backend
        result = client.depth(picture)
    assert result.depth.shape == (30, 40) and result.depth.dtype == np.float32
    assert result.model == str(tiny_depth) and result.metric is False and result.fov_deg is None
    expected = DepthEstimator(str(tiny_depth), "cpu").estimate(picture)
    np.testing.assert_allclose(result.depth, expected.depth, rtol=1e-5)
    assert np.isfinite(result.depth).all() and result.depth.min() >= 1 / 1.1 - 1e-6 and result.depth.max() <= 10 + 1e-4


def test_bad_and_oversized_images_get_clear_errors_and_the_server_keeps_serving(depth_server):
    server, _ = depth_server
    corrupt = ask(server.address, DepthRequest(EncodedImage(30, 40, "png", b"not a png")))
    assert isinstance(corrupt, ErrorReply) and corrupt.code == "bad_image" and "PNG" in corrupt.message
    huge = ask(server.address, DepthRequest(EncodedImage(4000, 4000, "raw", b"\0" * 12)))  # refused before decoding
    assert isinstance(huge, ErrorReply) and huge.code == "limit" and "1920x1080" in huge.message
    gray = np.zeros((4, 4), np.uint8)
    with pytest.raises(ProtocolError, match="uint8"):
        DasClient(server.address).depth(gray)
    with DasClient(server.address, timeout=20) as client:
        assert client.depth(image(12, 16)).depth.shape == (12, 16)


def test_a_model_that_cannot_load_is_reported(tmp_path):
    server = ThreadServer(tmp_path / "state", depth_model=str(tmp_path / "no-such-model"))
    try:
        with DasClient(server.address, timeout=20) as client, pytest.raises(ServerError) as error:
            client.depth(image())
        assert error.value.code == "depth_unavailable" and "--depth-model" in str(error.value)
        assert client.info().backend == "preview"
    finally:
        server.stop()


def test_depth_requests_are_answered_one_at_a_time_in_order(depth_server):
    server, _ = depth_server
    results: dict[int, tuple] = {}

    def one(index: int) -> None:
        with DasClient(server.address, timeout=30) as client:
            results[index] = client.depth(image(10 + index, 12, index)).depth.shape

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {i: (10 + i, 12) for i in range(4)}


def test_depth_from_disparity_and_the_command_line():
    disparity = np.array([[0.0, 2.0], [4.0, 4.0]])
    np.testing.assert_allclose(depth_from_disparity(disparity), [[10.0, 1 / 0.6], [1 / 1.1, 1 / 1.1]])
    args = build_parser().parse_args(["--backend", "preview"])
    assert config_from_args(args).depth_model == DEFAULT_DEPTH_MODEL
    args = build_parser().parse_args(["--depth-model", "some/folder"])
    assert config_from_args(args).depth_model == "some/folder"


def test_camera_move_asks_the_server_for_depth(depth_server, tmp_path, capsys):
    from PIL import Image

    from das_core.cli import main
    from das_core.tracking.tracks import Tracks

    server, _ = depth_server
    Image.fromarray(image(24, 32)).save(tmp_path / "picture.png")
    args = ["camera-move", str(tmp_path / "picture.png"), "--motion", "rot y 5", "--server", server.address]
    assert main([*args, "-o", str(tmp_path / "tracks.npz"), "--step", "2"]) == 0
    assert "(relative)" in capsys.readouterr().out
    tracks = Tracks.load(tmp_path / "tracks.npz")
    assert (tracks.width, tracks.height, tracks.num_frames) == (32, 24, 49)
    assert 0.5 < np.median(tracks.points[0, :, 2]) < 2.0  # relative depth: median about 1 unit
