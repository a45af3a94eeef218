"""The das GPU server: `python -m das_server`. One thread owns the ZeroMQ socket (`server.py`),
one worker thread owns the model (`worker.py`), jobs live in SQLite (`job_store.py`)."""
