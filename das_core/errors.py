"""The one exception type users see: its message names the problem and the next step."""


class DasError(Exception):
    """A problem with the user's input or environment, explained in one readable message.

    The CLI prints it as a single line and exits non-zero; Blender operators report it.
    Subclasses (for example `TracksError`, `ProtocolError`) narrow where it came from.
    """
