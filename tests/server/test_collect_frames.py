"""`collect_frames`: a job's events from a real server (127.0.0.1, server in a thread) into its video."""

from __future__ import annotations

import numpy as np
import pytest

from das_core.errors import DasError
from das_core.wire.client import (
    Accepted,
    DasClient,
    Done,
    Frame,
    JobFailedError,
    Progress,
    collect_frames,
)
from das_core.wire.protocol import frame_digest, result_checksum
from tests.server.conftest import GatedPreview, ThreadServer, make_request, preview_frames


def test_frames_come_back_in_order_and_the_hook_sees_every_event_before_done(preview_server):
    request = make_request(5)
    seen = []
    with DasClient(preview_server.address) as client:
        result = collect_frames(client.events(client.submit(request), timeout=30), on_event=seen.append)
    expected = preview_frames(request)
    np.testing.assert_array_equal(result.frames, np.stack(expected))
    assert result.done.checksum == result_checksum([frame_digest(frame) for frame in expected])
    assert isinstance(seen[0], Accepted) and any(isinstance(event, Progress) for event in seen)
    assert [event.index for event in seen if isinstance(event, Frame)] == list(range(len(expected)))
    assert all(isinstance(event, (Accepted, Progress, Frame)) for event in seen)


def test_a_cancelled_job_raises_with_the_servers_failure(tmp_path):
    server = ThreadServer(tmp_path / "state", instance=GatedPreview())  # held: the job stays queued or running
    try:
        with DasClient(server.address) as client:
            job_id = client.submit(make_request(6, job_id="to-cancel"))
            client.cancel(job_id)
            with pytest.raises(JobFailedError, match="job to-cancel was cancelled") as raised:
                collect_frames(client.events(job_id, timeout=30))
        assert raised.value.failure.code == "cancelled"
    finally:
        server.stop()


def test_a_stream_without_all_frames_is_an_error_naming_the_job():
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    with pytest.raises(DasError, match="job j ended with 1 of 2 frames; fetch it again"):
        collect_frames([Frame("j", 0, frame), Done("j", 2, "sha256:x", {})])
    with pytest.raises(DasError, match="ended before its result"):
        collect_frames([Frame("j", 0, frame)])
