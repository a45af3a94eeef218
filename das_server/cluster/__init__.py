"""A pool of warm workers on a Ray cluster behind the usual front end (`python -m das_server --ray`).

The front end is the ordinary `Server` (ZeroMQ, protocol, CURVE, the SQLite job store: the source
of truth); instead of a worker thread it gets a `Pool` (`pool.py`), which keeps one `Slot`
(`slot.py`) per worker. Each slot owns a `JobActor` (`actor.py`) on the cluster, one per GPU by
default, that loads the backend once and streams progress and frames back while it runs a job.
Idle slots claim the next job in fair order from the store; a worker that dies loses no job (it
goes back to the queue, and frames already sent are not sent again); a worker that fails to start
is started again with backoff. `connect.py` finds the cluster and plans the workers.

Only this package imports ray, and `__main__` imports it only for `--ray`.
"""
