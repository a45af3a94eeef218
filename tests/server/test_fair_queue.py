"""Fair order: clients take turns, each client's own jobs keep their order (the rule in both modes)."""

from __future__ import annotations

import time

from das_core.wire.client import DasClient, Done
from das_core.wire.protocol import Submit, encode
from das_server.job_store import JobStore
from tests.server.conftest import GatedPreview, ThreadServer, make_request


def _add(store: JobStore, job_id: str, client: str) -> None:
    submit = Submit.from_request(make_request(0, height=8, width=8, frames=2), job_id)
    store.add(submit, encode(submit), client)


def test_a_batch_does_not_starve_a_single_shot_and_each_client_keeps_its_order(tmp_path):
    store = JobStore(tmp_path)
    for number in range(5):
        _add(store, f"batch{number}", "name:batch")
    _add(store, "single", "name:single")
    _add(store, "other0", "name:other")
    _add(store, "other1", "name:other")
    order = [job.job_id for job in store.queue()]
    assert order == ["batch0", "single", "other0", "batch1", "other1", "batch2", "batch3", "batch4"]
    assert store.claim_next() == "batch0"
    # batch now has one running: the others go first, and positions count the running job
    assert store.positions()[:3] == [("single", 1), ("other0", 2), ("batch1", 3)]
    assert store.position(store.get("batch4")) == 7
    assert store.claim_next() == "single" and store.claim_next() == "other0"
    assert store.cancel_queued("batch1")
    assert [job.job_id for job in store.queue()] == ["other1", "batch2", "batch3", "batch4"]  # turns stay
    assert store.recover() == ["batch0", "single", "other0", "other1", "batch2", "batch3", "batch4"]
    store.close()


def test_a_client_that_keeps_submitting_alternates_with_a_batch(tmp_path):
    store = JobStore(tmp_path)
    for number in range(6):
        _add(store, f"batch{number}", "name:batch")
    started = []
    for number in range(3):  # the artist submits the next shot once the last one started
        _add(store, f"shot{number}", "name:artist")
        for _ in range(2):
            job_id = store.claim_next()
            started.append(job_id)
            store.fail(job_id, "backend_error", "finished")
    assert started == ["batch0", "shot0", "batch1", "shot1", "batch2", "shot2"]
    store.close()


def test_a_state_dir_from_before_turns_opens_and_runs_in_submission_order(tmp_path):
    import sqlite3

    store = JobStore(tmp_path)
    for number in range(3):
        _add(store, f"job{number}", "name:me")
    store.close()
    database = sqlite3.connect(tmp_path / "jobs.sqlite", isolation_level=None)
    database.execute("ALTER TABLE jobs DROP COLUMN turn")
    database.close()
    reopened = JobStore(tmp_path)
    assert [job.job_id for job in reopened.queue()] == ["job0", "job1", "job2"]
    assert reopened.claim_next() == "job0"
    reopened.close()


def test_the_server_interleaves_clients_and_reports_positions_in_that_order(tmp_path):
    backend = GatedPreview()
    server = ThreadServer(tmp_path / "state", instance=backend)
    try:
        with DasClient(server.address, name="batch") as batch, DasClient(server.address, name="artist") as artist:
            batch_ids = [batch.submit(make_request(n, job_id=f"batch{n}")) for n in range(4)]
            deadline = time.monotonic() + 10
            while batch.status("batch0").state != "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            single = artist.submit(make_request(9, job_id="single"))
            assert artist.status(single).position == 1  # next, ahead of the batch's other three
            assert [batch.status(job_id).position for job_id in batch_ids[1:]] == [2, 3, 4]
            backend.gate.set()
            for job_id in [*batch_ids, single]:
                assert isinstance(list(batch.events(job_id, timeout=60))[-1], Done)
            started = {job_id: batch.status(job_id).started for job_id in [*batch_ids, single]}
        assert sorted(started, key=started.__getitem__) == ["batch0", "single", "batch1", "batch2", "batch3"]
    finally:
        server.stop()
