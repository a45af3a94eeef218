"""The one exception type users see: its message names the problem and the next step.

`plural` writes the counts in such messages ("1 job", "3 jobs").
"""


class DasError(Exception):
    """A problem with the user's input or environment, explained in one readable message.

    The CLI prints it as a single line and exits non-zero; Blender operators report it.
    Subclasses (for example `TracksError`, `ProtocolError`) narrow where it came from.
    """


def plural(count: int | float, noun: str, nouns: str | None = None) -> str:
    """`count` and `noun`, or `nouns` (default: noun + "s") unless `count` is 1: "1 job", "2 jobs", "0.5 days"."""
    number = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{number} {noun if count == 1 else nouns or noun + 's'}"
