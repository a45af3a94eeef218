"""Jobs of several windows on the wire: `submit` `windows`, its checks, `max_windows`, `JobRequest.window`."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from das_core.wire.protocol import (
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


def _parts(request: JobRequest, **header) -> list[bytes]:
    """A valid submit of `request`, its header then changed as the test says (as a hostile client could)."""
    parts = encode(Submit.from_request(request, "w1"))
    fields = msgpack.unpackb(parts[0])
    fields.update(header)
    return [msgpack.packb(fields), *parts[1:]]


def test_windows_travel_and_a_job_without_them_is_sent_as_before():
    request = make_request(1, frames=100, windows=(49, 49, 2))
    message, _ = decode(encode(Submit.from_request(request, "w1")), decode_images=False)
    assert message.windows == (49, 49, 2) and message.control_frames == 100
    back = message.to_request()
    assert back.windows == (49, 49, 2) and back.window_count == 3
    single = encode(Submit.from_request(make_request(1, frames=3), "w2"))
    assert "windows" not in msgpack.unpackb(single[0])
    assert decode(single, decode_images=False)[0].to_request().window_lengths == (3,)


@pytest.mark.parametrize(
    ("windows", "frames", "message"),
    [
        ((3, 3), 7, "the windows add up to 6 frames but the tracking video has 7"),
        ((6, 1), 7, "window 1 has 1 frames; each window of a job of several takes 2 to 81"),
        ((7,), 7, "a job of one window sends no windows"),
        ((3, 4.0), 7, "windows must be whole numbers"),
    ],
)
def test_a_client_refuses_windows_that_cannot_be_right(windows, frames, message):
    with pytest.raises(ProtocolError, match=message):
        Submit.from_request(make_request(1, frames=frames, windows=windows), "w1")


@pytest.mark.parametrize(
    ("windows", "message", "code"),
    [
        ([3, 3, 3], "the job has 3 windows; this server runs at most 2 per job", "limit"),
        ([6, 3], "window 0 has 6 frames; each window of a job of several takes 2 to 5", "limit"),
        ([4, 4], "the windows add up to 8 frames but the tracking video has 9", "bad_request"),
        ([1, 8], "window 0 has 1 frames", "limit"),
        ([3, True], r"windows\[1\] must be int", "bad_message"),
    ],
)
def test_a_server_checks_windows_against_its_limits(windows, message, code):
    parts = _parts(make_request(1, frames=9, windows=(5, 4)), windows=windows)
    with pytest.raises(ProtocolError, match=message) as caught:
        decode(parts, Limits(max_frames=5, max_windows=2), decode_images=False)
    assert caught.value.code == code


def test_only_a_job_of_several_windows_may_exceed_max_frames():
    limits = Limits(max_frames=5, max_windows=2)
    message, _ = decode(_parts(make_request(1, frames=9, windows=(5, 4))), limits, decode_images=False)
    assert message.windows == (5, 4)
    with pytest.raises(ProtocolError, match="has 9 frames; this server takes 1 to 5 in one window") as caught:
        decode(_parts(make_request(1, frames=9)), limits, decode_images=False)
    assert caught.value.code == "limit"
    with pytest.raises(ProtocolError, match="message has 13 frames; at most 12 are allowed"):
        decode(_parts(make_request(1, frames=11, windows=(5, 6))), limits, decode_images=False)


def test_max_windows_is_published_and_an_older_servers_info_means_one():
    info = ServerInfo(1, "0.1", "preview", None, "cpu", True, 0, 64, 16, "raw", Limits(max_windows=16))
    assert info.to_wire()["limits"]["max_windows"] == 16
    older = ServerInfo(1, "0.1", "preview", None, "cpu", True, 0, 64, 16, "raw", Limits(max_windows=1))
    assert "max_windows" not in older.to_wire()["limits"]
    for body, windows in ((info, 16), (older, 1)):
        message, _ = decode(encode(Info(body)))
        assert message.body.limits.max_windows == windows


def test_a_window_is_its_slice_of_the_tracking_video_with_the_given_reference():
    request = make_request(1, frames=9, windows=(5, 4))
    reference = np.full_like(request.image, 7)
    second = request.window(1, reference)
    assert second.windows is None and second.image is reference and second.prompt == request.prompt
    np.testing.assert_array_equal(second.tracking, request.tracking[5:9])
    np.testing.assert_array_equal(request.window(0, request.image).tracking, request.tracking[:5])
    with pytest.raises(ProtocolError, match="window 2 does not exist; this job has 2"):
        request.window(2, reference)


def test_a_window_of_point_tracks_drops_the_points_invisible_throughout_it():
    tracks = np.arange(8 * 4 * 2, dtype=np.float32).reshape(8, 4, 2)
    visibility = np.zeros((8, 4), bool)
    visibility[:4, :3] = True  # window 0 (its frames 0-3): points 0, 1, 2
    visibility[1:, 1] = False  # point 1 hidden after window 0's first frame: still one of its points
    visibility[4:, 3] = visibility[7, 0] = True  # window 1 (frames 4-7): points 0 and 3
    request = JobRequest("p", np.zeros((8, 8, 3), np.uint8), point_tracks=tracks, visibility=visibility, windows=(4, 4))
    first, second = request.window(0, request.image), request.window(1, request.image)
    np.testing.assert_array_equal(first.point_tracks, tracks[:4, :3])
    np.testing.assert_array_equal(second.point_tracks, tracks[4:, [0, 3]])
    np.testing.assert_array_equal(second.visibility, visibility[4:, [0, 3]])
    assert second.windows is None and second.tracking is None


def test_the_positions_of_all_windows_must_fit_one_message_frame():
    limits = Limits(max_frames=81)
    EncodedPointTracks.check_shape(81 * 3, 4096, limits)  # 8 MB of positions: fits
    with pytest.raises(ProtocolError, match="are 13107200 bytes of positions; one frame of a message holds at most"):
        EncodedPointTracks.check_shape(200, 8192, limits)
