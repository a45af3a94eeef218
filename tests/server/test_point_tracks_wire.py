"""Point tracks on the wire: encoding, limits checked before allocation, NaN, shapes, and `info`'s window."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from das_core.tracking.window import DAS_WINDOW, POINT_TRACKS, TRACKING_VIDEO, WAN_MOVE_WINDOW
from das_core.wire.protocol import (
    VERSION,
    EncodedPointTracks,
    Info,
    JobRequest,
    Limits,
    ProtocolError,
    ServerInfo,
    Submit,
    decode,
    encode,
)
from tests.server.conftest import make_request

WAN_LIMITS = Limits(max_frames=WAN_MOVE_WINDOW.frames)


def point_request(frames: int = 81, points: int = 7, seed: int = 0, **kwargs) -> JobRequest:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tracks = rng.uniform(-10, 60, (frames, points, 2)).astype(np.float32)
    visibility = rng.random((frames, points)) > 0.3
    return JobRequest(prompt="a cat", image=image, point_tracks=tracks, visibility=visibility, **kwargs)


def test_point_tracks_round_trip_exactly_in_two_binary_frames():
    request = point_request(points=13)
    parts = encode(Submit.from_request(request, "wm-1"))
    header = msgpack.unpackb(parts[0])
    assert header["point_tracks"] == {"frames": 81, "points": 13} and "tracking" not in header
    assert [len(part) for part in parts[2:]] == [81 * 13 * 2 * 4, (81 * 13 + 7) // 8]
    message, _ = decode(parts, WAN_LIMITS, decode_images=False)
    assert isinstance(message, Submit) and message.control == POINT_TRACKS and message.control_frames == 81
    decoded = message.to_request()
    assert decoded.tracking is None and decoded.control == POINT_TRACKS
    np.testing.assert_array_equal(decoded.point_tracks, request.point_tracks)
    np.testing.assert_array_equal(decoded.visibility, request.visibility)
    np.testing.assert_array_equal(decoded.image, request.image)


def test_tracking_video_submits_are_unchanged():
    request = make_request(1)
    message, _ = decode(encode(Submit.from_request(request, "das-1")), decode_images=False)
    assert message.control == TRACKING_VIDEO and message.point_tracks is None
    assert "point_tracks" not in msgpack.unpackb(encode(Submit.from_request(request, "das-1"))[0])


def _forged(frames: int, points: int, positions: bytes, visibility: bytes) -> list[bytes]:
    """A point-track submit whose header and frames say whatever the test wants."""
    parts = encode(Submit.from_request(point_request(frames=2, points=2), "forged"))
    header = msgpack.unpackb(parts[0])
    header["point_tracks"] = {"frames": frames, "points": points}
    return [msgpack.packb(header), parts[1], positions, visibility]


@pytest.mark.parametrize(
    ("frames", "points", "message"),
    [
        (10**9, 2, "10" + "00000000 frames; this server takes 1 to 81"),
        (2, 10**9, "points; this server takes 1 to 8192"),
        (0, 2, "0 frames"),
    ],
)
def test_shape_limits_are_checked_before_any_buffer_is_read(frames, points, message):
    with pytest.raises(ProtocolError, match=message) as caught:
        decode(_forged(frames, points, b"", b""), WAN_LIMITS, decode_images=False)
    assert caught.value.code == "limit"


def test_frames_of_the_wrong_length_are_refused():
    good = point_request(frames=2, points=2)
    positions = np.asarray(good.point_tracks, "<f4").tobytes()
    with pytest.raises(ProtocolError, match="need frames of 32 and 1 bytes, got 28 and 1"):
        decode(_forged(2, 2, positions[:-4], b"\x00"), WAN_LIMITS, decode_images=False)
    with pytest.raises(ProtocolError, match="need two binary frames"):
        decode(_forged(2, 2, positions, b"\x00")[:3], WAN_LIMITS, decode_images=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_positions_are_refused_by_sender_and_receiver(bad):
    request = point_request(frames=5, points=3)
    request.point_tracks[3, 1, 0] = bad
    with pytest.raises(ProtocolError, match="point 1 has a position that is not finite .* at frame 3"):
        Submit.from_request(request, "nan")
    positions = np.asarray(request.point_tracks, "<f4").tobytes()
    with pytest.raises(ProtocolError, match="not finite") as caught:
        decode(_forged(5, 3, positions, b"\xff\xff"), WAN_LIMITS, decode_images=False)
    assert caught.value.code == "bad_request"


def test_far_positions_are_clamped_when_sent_and_refused_when_received():
    request = point_request(frames=2, points=2)
    request.point_tracks[1, 0] = (1e9, -1e9)
    submit = Submit.from_request(request, "far")
    tracks, _ = submit.point_tracks.decode()
    assert tuple(tracks[1, 0]) == (65536.0, -65536.0)
    positions = np.array([[[0, 0], [1e6, 0]], [[0, 0], [0, 0]]], "<f4").tobytes()
    with pytest.raises(ProtocolError, match=r"within \+-65536 pixels"):
        decode(_forged(2, 2, positions, b"\xf0"), WAN_LIMITS, decode_images=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(visibility=np.ones((80, 7), bool)), r"visibility must be \[T, N\] = \[81, 7\]"),
        (dict(point_tracks=np.zeros((81, 7, 3), np.float32)), r"point tracks must be float \[T, N, 2\]"),
        (dict(point_tracks=np.zeros((81, 7, 2), np.int32)), r"point tracks must be float \[T, N, 2\]"),
        (dict(visibility=np.full((81, 7), 2)), "visibility must be bool"),
        (dict(visibility=None), "need their visibility"),
        (dict(tracking=np.zeros((81, 32, 48, 3), np.uint8)), "exactly one control"),
        (dict(point_tracks=np.zeros((82, 7, 2), np.float32), visibility=np.ones((82, 7), bool)), "82 frames"),
    ],
)
def test_mismatched_or_malformed_point_tracks_are_refused_by_the_sender(change, message):
    request = point_request()
    for name, value in change.items():
        setattr(request, name, value)
    with pytest.raises(ProtocolError, match=message):
        Submit.from_request(request, "bad")


def test_a_submit_with_both_controls_is_refused():
    parts = encode(Submit.from_request(point_request(frames=2, points=2), "both"))
    header = msgpack.unpackb(parts[0])
    header["tracking"] = [header["image"]]
    with pytest.raises(ProtocolError, match="not both"):
        decode([msgpack.packb(header), *parts[1:]], WAN_LIMITS, decode_images=False)


def _info(**window) -> ServerInfo:
    return ServerInfo(
        version=VERSION, das="0", backend="wan-move", model="m", device="cuda", preview=False, queue_length=0,
        max_queue=64, max_queue_per_client=16, result_codec="raw", limits=WAN_LIMITS, **window,
    )  # fmt: skip


def test_info_names_the_window_and_older_servers_mean_das():
    window = WAN_MOVE_WINDOW
    info = _info(control=window.control, width=window.width, height=window.height, frames=window.frames, fps=16.0)
    message, _ = decode(encode(Info(info)))
    assert message.body == info and message.body.window == WAN_MOVE_WINDOW
    old = _info()
    assert "control" not in encode(Info(old))[0].decode("latin-1")
    message, _ = decode(encode(Info(old)))
    assert message.body.control is None and message.body.window == DAS_WINDOW


def test_encoded_point_tracks_pack_visibility_bits_first_point_highest():
    encoded = EncodedPointTracks.encode(np.zeros((1, 9, 2), np.float32), np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1]], bool))
    assert encoded.visibility == bytes([0b10000001, 0b10000000])
    assert encoded.decode()[1].tolist() == [[True, False, False, False, False, False, False, True, True]]
