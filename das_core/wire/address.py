"""Addresses checked before ZeroMQ sees them: a forgotten scheme or an impossible port would otherwise
surface as something unrelated (an encryption refusal, a wrong port, a server that never answers)."""

from __future__ import annotations

from das_core.errors import DasError

SCHEMES = ("tcp", "ipc", "inproc")
_ANY_PORT = ("*", "0")  # a bind may let the system choose


def check_address(address: str, what: str, *, bind: bool = False) -> None:
    """Raise `DasError` saying what is wrong with `address`; `what` names it ("--bind", "the server address").

    tcp:// needs HOST:PORT with a port from 1 to 65535 (a bind may also use * or 0: any free port).
    """
    scheme, separator, rest = address.partition("://")
    if not separator:
        raise DasError(f"{what} {address} needs a scheme: tcp://{address}")
    if scheme not in SCHEMES:
        raise DasError(f"{what} {address}: unknown scheme {scheme}://; use tcp://HOST:PORT")
    if scheme != "tcp":
        return
    host, colon, port = rest.rpartition(":")
    if not colon or not host or rest.endswith("]"):
        raise DasError(f"{what} {address} needs a host and a port: tcp://HOST:PORT, e.g. tcp://127.0.0.1:5555")
    if bind and port in _ANY_PORT:
        return
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise DasError(f"{what} {address}: port {port} is invalid; use 1 to 65535")
