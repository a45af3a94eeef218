"""`python -m das_core.train FLAGS` / `accelerate launch -m das_core.train FLAGS`: the trainer."""

import sys

from das_core.errors import DasError
from das_core.train.args import parse_args


def main(argv: list[str] | None = None) -> int:
    """Parse the reference flags and train; a `DasError` prints one line and exits 1."""
    from das_core.train.loop import train

    try:
        train(parse_args(argv))
    except DasError as error:
        print(f"das train: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
