"""The cluster additions to version 1: `workers` in server info and `pool` in server status, both optional."""

from __future__ import annotations

import msgpack
import pytest

from das_core.wire.protocol import ProtocolError, WorkerStatus, decode, encode
from tests.server.test_protocol import _OLD_INFO

_BUSY = WorkerStatus("worker-0", "gpu-box-1", "0", "das", "busy", "job-7", 12, 95.25, None)
_RESTARTING = WorkerStatus("worker-1", None, None, "das", "restarting", error="failed to start (OOM); retry 2 in 2 s")


def test_a_cluster_status_round_trips_and_old_readers_see_every_old_key():
    body = {**_OLD_INFO, "workers": 1, "jobs": {"running": 1}, "pool": [_BUSY.to_wire(), _RESTARTING.to_wire()]}
    raw = msgpack.packb({"v": 1, "type": "reply", "req": 3, "body": body}, use_bin_type=True)
    message, _ = decode([raw])
    assert message.body.info.workers == 1 and message.body.pool == (_BUSY, _RESTARTING)
    assert encode(message, 3) == [raw]
    unpacked = msgpack.unpackb(raw, raw=False)["body"]
    assert {key: unpacked[key] for key in _OLD_INFO} == _OLD_INFO  # what a version-1 reader reads is unchanged


def test_a_single_process_status_has_neither_key():
    body = {**_OLD_INFO, "jobs": {"done": 2}}
    raw = msgpack.packb({"v": 1, "type": "reply", "body": body}, use_bin_type=True)
    message, _ = decode([raw])
    assert message.body.info.workers is None and message.body.pool == ()
    assert "pool" not in message.body.to_wire() and "workers" not in message.body.to_wire()


@pytest.mark.parametrize(
    "worker, reason",
    [
        ({**_BUSY.to_wire(), "jobs_done": "12"}, "'body.pool\\[0\\].jobs_done' must be int"),
        ({**_BUSY.to_wire(), "job_id": "../x"}, "job id"),
        ({**_BUSY.to_wire(), "state": None}, "'body.pool\\[0\\].state' is missing"),
    ],
)
def test_a_malformed_worker_is_refused_with_its_field_named(worker, reason):
    body = {**_OLD_INFO, "jobs": {}, "pool": [worker]}
    with pytest.raises(ProtocolError, match=reason):
        decode([msgpack.packb({"v": 1, "type": "reply", "body": body}, use_bin_type=True)])
