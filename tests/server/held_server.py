"""`python -m tests.server.held_server`: a das server whose preview backend never starts a job's frames.

It takes `python -m das_server`'s options. Each job stays running, silent, until the server stops:
a server certainly in the middle of a job, for tests that kill it there.
"""

from __future__ import annotations

from das_server.__main__ import build_parser, config_from_args, logging_to_stderr
from das_server.server import Server
from tests.server.conftest import GatedPreview


def main() -> None:
    args = build_parser().parse_args()
    with logging_to_stderr(args.log_level):
        Server(config_from_args(args), GatedPreview()).run()


if __name__ == "__main__":
    main()
