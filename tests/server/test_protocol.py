"""The codec under attack: every malformed input raises ProtocolError with a reason, never crashes."""

from __future__ import annotations

import zlib

import msgpack
import numpy as np
import pytest

from das_core.wire.protocol import (
    VERSION,
    Accepted,
    CancelResult,
    Done,
    EncodedImage,
    Fetch,
    Frame,
    Hello,
    Info,
    JobError,
    JobFailed,
    JobList,
    JobProgress,
    JobStatus,
    Limits,
    Progress,
    ProtocolError,
    Reply,
    ServerInfo,
    ServerStatus,
    Submit,
    check_job_id,
    decode,
    encode,
    join_parts,
    split_parts,
)
from tests.server.conftest import make_request


def _header(**fields) -> bytes:
    return msgpack.packb({"v": VERSION, **fields}, use_bin_type=True)


def test_submit_round_trip_keeps_every_field_and_pixel():
    request = make_request(3, negative_prompt="blurry", steps=7, guidance=4.5, fps=12.0)
    parts = encode(Submit.from_request(request, "job-1", client="me"), req=5)
    message, req = decode(parts, decode_images=False)
    assert req == 5 and isinstance(message, Submit)
    assert (message.job_id, message.prompt, message.negative_prompt, message.seed, message.steps) == (
        "job-1",
        "job 3",
        "blurry",
        3,
        7,
    )
    assert (message.guidance, message.fps, message.client) == (4.5, 12.0, "me")
    decoded = message.to_request()
    np.testing.assert_array_equal(decoded.image, request.image)
    np.testing.assert_array_equal(decoded.tracking, request.tracking)
    assert len(parts) == 2 + 49  # header, image, one frame per tracking frame: no base64, no pickle


@pytest.mark.parametrize("codec", ["png", "zlib", "raw"])
def test_every_codec_is_lossless(codec):
    image = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    encoded = EncodedImage.encode(image, codec)
    np.testing.assert_array_equal(encoded.decode(), image)
    message, _ = decode(encode(Frame("j", 2, encoded)))
    np.testing.assert_array_equal(message.image, image)


def test_server_events_round_trip():
    preview = np.zeros((4, 6, 3), np.uint8)
    for event in (
        Accepted("j", 3),
        Progress("j", "denoise", 2, 50, 1.5),
        Done("j", 49, "sha256:ab", {"preview": True}),
        JobFailed("j", "cancelled", "stopped"),
        Info(_old_info_fields()),
        Fetch("j", 4),
        Hello("x"),
    ):
        assert decode(encode(event))[0] == event
    progress, _ = decode(encode(Progress("j", "denoise", 1, 2, None, preview)))
    np.testing.assert_array_equal(progress.preview, preview)


# Bodies exactly as version-1 servers built them (string-keyed dicts, keys in this order).
_OLD_INFO = {
    "version": 1,
    "das": "0.1.0",
    "backend": "preview",
    "model": "none (reference image warped along the tracking video)",
    "device": "cpu",
    "preview": True,
    "queue_length": 2,
    "max_queue": 64,
    "max_queue_per_client": 16,
    "result_codec": "raw",
    "limits": {
        "max_frames": 49,
        "max_width": 1920,
        "max_height": 1080,
        "max_prompt_chars": 2000,
        "max_steps": 200,
        "max_part_bytes": 8 << 20,
        "max_metadata_bytes": 64 << 10,
    },
}
_OLD_JOB = {
    "job_id": "j1",
    "state": "running",
    "prompt": "a box",
    "seed": 42,
    "steps": 50,
    "frames_done": 3,
    "created": 1700000000.25,
    "started": 1700000001.5,
    "finished": None,
}
_OLD_DONE_JOB = {
    **_OLD_JOB,
    "state": "done",
    "frames_done": 49,
    "finished": 1700000009.75,
    "checksum": "blake2b:ab",
    "metadata": {"backend": "preview", "preview": True, "fps": 8.0, "seconds": 1.25, "model_size": [720, 480]},
}
_OLD_FAILED_JOB = {**_OLD_JOB, "state": "failed", "error": {"code": "backend_error", "message": "boom"}}


def _old_info_fields() -> ServerInfo:
    message, _ = decode([_header(type="info", info=_OLD_INFO)])
    return message.body


@pytest.mark.parametrize(
    "kind, key, old_body, expected",
    [
        ("info", "info", _OLD_INFO, ServerInfo),
        ("reply", "body", {**_OLD_INFO, "jobs": {"done": 3, "queued": 1}}, ServerStatus),
        ("reply", "body", {**_OLD_JOB, "position": 0}, JobStatus),
        (
            "reply",
            "body",
            {**_OLD_JOB, "position": 0, "progress": {"phase": "denoise", "step": 3, "total": 50, "eta_s": 2.5}},
            JobStatus,
        ),
        ("reply", "body", {**_OLD_JOB, "state": "queued", "started": None, "position": 4}, JobStatus),
        ("reply", "body", {**_OLD_DONE_JOB, "position": 0}, JobStatus),
        ("reply", "body", {**_OLD_FAILED_JOB, "position": 0}, JobStatus),
        ("reply", "body", {"jobs": [_OLD_DONE_JOB, _OLD_FAILED_JOB, _OLD_JOB]}, JobList),
        ("reply", "body", {"jobs": []}, JobList),
        ("reply", "body", {"job_id": "j1", "state": "cancelling"}, CancelResult),
    ],
)
def test_old_style_dict_bodies_decode_typed_and_encode_to_the_same_bytes(kind, key, old_body, expected):
    raw = _header(type=kind, req=7, **{key: old_body})
    message, req = decode([raw])
    assert isinstance(message.body, expected)
    assert encode(message, req) == [raw]


def test_typed_bodies_carry_every_field():
    info = _old_info_fields()
    assert (info.backend, info.preview, info.queue_length, info.limits.max_part_bytes) == ("preview", True, 2, 8 << 20)
    assert info.limits.max_header_bytes == Limits().max_header_bytes  # not published: protocol 1's own
    running, _ = decode([_header(type="reply", body={**_OLD_JOB, "position": 0, "progress": {
        "phase": "denoise", "step": 3, "total": 50, "eta_s": None}})])  # fmt: skip
    assert running.body == JobStatus(
        "j1", "running", "a box", 42, 50, 3, 1700000000.25, 1700000001.5, None,
        position=0, progress=JobProgress("denoise", 3, 50, None),
    )  # fmt: skip
    failed, _ = decode([_header(type="reply", body=_OLD_FAILED_JOB)])
    assert failed.body.error == JobError("backend_error", "boom") and failed.body.position is None
    status, _ = decode([_header(type="reply", body={**_OLD_INFO, "jobs": {"done": 3}})])
    assert status.body.jobs == {"done": 3} and status.body.info == info


@pytest.mark.parametrize(
    "kind, key, body, reason",
    [
        ("reply", "body", {"something": 1}, "none of the known kinds"),
        ("reply", "body", [1, 2], "must be dict"),
        ("reply", "body", {**_OLD_JOB, "seed": "42"}, "'body.seed' must be int"),
        ("reply", "body", {"jobs": [_OLD_JOB, 5]}, r"jobs\[1\] must be a map"),
        ("reply", "body", {"jobs": [{**_OLD_JOB, "created": None}]}, r"'body.jobs\[0\].created' is missing"),
        ("reply", "body", {**_OLD_INFO, "jobs": {"done": "x"}}, "'body.jobs.done' must be int"),
        ("info", "info", {**_OLD_INFO, "limits": {}}, "'info.limits.max_frames' is missing"),
        ("info", "info", {**_OLD_INFO, "preview": 1}, "'info.preview' must be bool"),
    ],
)
def test_malformed_bodies_are_refused_with_the_field_named(kind, key, body, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode([_header(type=kind, **{key: body})])


def test_a_reply_body_is_typed_when_built():
    body = CancelResult("j1", "cancelled")
    assert decode(encode(Reply(body)))[0] == Reply(body)


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x92\x01", b"\xdf\xff\xff\xff\xff", bytes(range(256)), b"\x81\xa1"])
def test_garbage_and_truncated_headers_are_refused(raw):
    with pytest.raises(ProtocolError):
        decode([raw])


def test_random_bytes_never_escape_as_other_exceptions():
    rng = np.random.default_rng(1)
    valid = encode(Submit.from_request(make_request(0, frames=2), "abc"))
    for trial in range(300):
        parts = [bytes(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8)) for _ in range(rng.integers(1, 4))]
        if trial % 3 == 0:  # flip bytes inside a valid header so more of the parser is reached
            header = bytearray(valid[0])
            for _ in range(3):
                header[rng.integers(0, len(header))] = rng.integers(0, 256)
            parts = [bytes(header), *valid[1:]]
        try:
            decode(parts)
        except ProtocolError:
            pass


def test_version_mismatch_names_both_versions():
    with pytest.raises(ProtocolError, match="version 99.*speaks 1") as error:
        decode([msgpack.packb({"v": 99, "type": "hello"})])
    assert error.value.code == "version"


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"type": "nope"}, "unknown message type"),
        ({"type": "cancel"}, "'job_id' is missing"),
        ({"type": "cancel", "job_id": 5}, "must be str"),
        ({"type": "cancel", "job_id": "../../etc/passwd"}, "not valid"),
        ({"type": "fetch", "job_id": "a", "from_index": -1}, "from_index"),
        ({"type": "accepted", "job_id": "a", "position": True}, "got bool"),
        ({"type": "hello", "req": "x"}, "req"),
        ({"type": 7}, "unknown message type"),
    ],
)
def test_wrong_types_and_unknown_messages(fields, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode([_header(**fields)])


def _submit_parts(**overrides):
    parts = encode(Submit.from_request(make_request(1, frames=2), "abc"))
    header = msgpack.unpackb(parts[0])
    header.update(overrides)
    return [msgpack.packb(header, use_bin_type=True), *parts[1:]]


def test_huge_declared_sizes_are_refused_before_allocation():
    with pytest.raises(ProtocolError, match="accepts 1x1 up to") as error:
        decode(_submit_parts(image={"shape": [100000, 100000, 3], "codec": "raw"}))
    assert error.value.code == "limit"
    with pytest.raises(ProtocolError, match="frames"):
        decode(_submit_parts(tracking=[{"shape": [4, 4, 3], "codec": "raw"}] * (Limits().max_control_frames + 1)))


def test_zlib_bomb_inflates_no_further_than_declared():
    bomb = EncodedImage(4, 4, "zlib", zlib.compress(bytes(50_000_000)))
    with pytest.raises(ProtocolError, match="exactly 4x4"):
        bomb.decode()


def test_png_whose_size_differs_from_its_header_is_refused():
    png = EncodedImage.encode(np.zeros((8, 8, 3), np.uint8), "png")
    with pytest.raises(ProtocolError, match="PNG image is 8x8"):
        EncodedImage(4, 4, "png", png.data).decode()
    with pytest.raises(ProtocolError, match="does not decode"):
        EncodedImage(8, 8, "png", png.data[:20]).decode()


def test_frame_count_must_match_the_header():
    parts = _submit_parts()
    with pytest.raises(ProtocolError, match="truncated"):
        decode(parts[:-1])
    with pytest.raises(ProtocolError, match="binary frames"):
        decode([*parts, b"extra"])


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 10_000}, "steps"),
        ({"prompt": "   "}, "empty"),
        ({"prompt": "x" * 5000}, "characters"),
        ({"guidance": float("nan")}, "guidance"),
        ({"seed": -1}, "seed"),
        ({"fps": 0.0}, "fps"),
        ({"seed": "42"}, "must be int"),
    ],
)
def test_submit_fields_are_checked(overrides, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(_submit_parts(**overrides))


def test_limits_are_the_servers_own():
    parts = _submit_parts()
    with pytest.raises(ProtocolError, match="at most 3 are allowed"):
        decode(parts, Limits(max_frames=1, max_windows=1))
    with pytest.raises(ProtocolError, match="accepts 1x1 up to 32x32"):
        decode(parts, Limits(max_width=32, max_height=32))


@pytest.mark.parametrize(
    "limits, overrides, reason",
    [
        (Limits(max_header_bytes=64), {}, "header is .* bytes; at most 64"),
        (Limits(max_header_list_len=1), {}, "not valid msgpack"),
        (Limits(max_client_chars=3), {"client": "abcd"}, "client is 4 characters"),
        (Limits(max_seed=10), {"seed": 11}, "from 0 to 10"),
        (Limits(max_guidance=5.0), {"guidance": 6.0}, "from 0 to 5"),
        (Limits(min_fps=10.0, max_fps=30.0), {"fps": 60.0}, "from 10 to 30"),
        (Limits(max_request_id=4), {"req": 5}, "req must be"),
    ],
)
def test_every_bound_comes_from_limits(limits, overrides, reason):
    decode(_submit_parts(**overrides))  # within the default limits
    with pytest.raises(ProtocolError, match=reason):
        decode(_submit_parts(**overrides), limits)


def test_fetch_index_bound_comes_from_limits():
    assert decode([_header(type="fetch", job_id="a", from_index=9)])[0] == Fetch("a", 9)
    with pytest.raises(ProtocolError, match="from 0 to 8"):
        decode([_header(type="fetch", job_id="a", from_index=9)], Limits(max_frame_index=8))


def test_info_publishes_the_configurable_limits_only():
    assert list(Limits(max_frames=7).published()) == list(Limits.PUBLISHED)
    assert Limits(max_frames=7).published()["max_frames"] == 7


@pytest.mark.parametrize("job_id", ["", "a/b", "..", "a b", "x" * 65, "-lead", "é"])
def test_job_ids_can_never_name_a_path(job_id):
    with pytest.raises(ProtocolError):
        check_job_id(job_id)


def test_stored_form_round_trips_and_rejects_truncation():
    parts = [b"header", b"", b"\x00" * 1000]
    blob = join_parts(parts)
    assert split_parts(blob) == parts
    for cut in (5, len(blob) - 1):
        with pytest.raises(ProtocolError):
            split_parts(blob[:cut])
    with pytest.raises(ProtocolError, match="trailing"):
        split_parts(blob + b"x")


def test_client_side_validation_names_the_problem():
    request = make_request(0)
    request.tracking = request.tracking.astype(np.float32)
    with pytest.raises(ProtocolError, match="uint8"):
        Submit.from_request(request, "abc")


def test_protocol_client_and_cli_import_without_torch_or_bpy():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['bpy'] = None\n"
        "import das_core.wire.protocol, das_core.wire.client, das_core.commands.server\n"
        "import das_server.server, das_server.backends.preview\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
