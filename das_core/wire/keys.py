"""Key handling on both ends: loopback by default, CURVE plus a client allow-list otherwise.

Binding to anything but loopback without keys refuses to start unless `--insecure` is given.
Keys come from `das keygen DIR`: `server.key`/`server.key_secret`, `client.key`/`client.key_secret`
and `allowed_clients/` holding the public keys the server accepts (add a file per artist).
The server uses `check_bind` and `secure`; clients use `load_keys`.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from das_core.errors import DasError
from das_core.wire.address import check_address

SERVER_SECRET = "server.key_secret"
ALLOWED_DIR = "allowed_clients"


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: reachable from elsewhere
        return False


def check_bind(bind: str, keys_dir: Path | None, insecure: bool) -> None:
    """Refuse a malformed bind address, and a non-loopback one that has neither keys nor an explicit --insecure."""
    check_address(bind, "--bind", bind=True)
    if is_loopback(bind) or keys_dir is not None or insecure:
        return
    raise DasError(
        f"refusing to bind {bind} without encryption: anyone on the network could use the GPU. "
        "Run `das keygen KEYS` and start with --keys KEYS (clients use `--keys KEYS` too), "
        "or pass --insecure on a network you trust"
    )


def secure(context: zmq.Context, socket: zmq.Socket, keys_dir: Path) -> ThreadAuthenticator:
    """Make `socket` a CURVE server that accepts only the public keys in `keys_dir/allowed_clients`."""
    secret_file = keys_dir / SERVER_SECRET
    allowed = keys_dir / ALLOWED_DIR
    if not secret_file.is_file():
        raise DasError(f"no {SERVER_SECRET} in {keys_dir}; create keys with `das keygen {keys_dir}`")
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise DasError(
            f"{allowed} holds no client public keys (*.key); add them with `das keygen {keys_dir} --client NAME`"
        )
    public, secret = zmq.auth.load_certificate(secret_file)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(allowed))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def keygen(keys_dir: Path, client: str = "client") -> list[Path]:
    """Create the server key pair (once) and a key pair for `client`, allowed by the server."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    allowed = keys_dir / ALLOWED_DIR
    allowed.mkdir(exist_ok=True)
    made = []
    if not (keys_dir / SERVER_SECRET).exists():
        zmq.auth.create_certificates(keys_dir, "server")
        made += [keys_dir / "server.key", keys_dir / SERVER_SECRET]
    if (keys_dir / f"{client}.key_secret").exists():
        raise DasError(f"{keys_dir / client}.key_secret exists; choose another name with --client NAME")
    public, secret = zmq.auth.create_certificates(keys_dir, client)
    shutil.copy(public, allowed / f"{client}.key")
    made += [Path(public), Path(secret), allowed / f"{client}.key"]
    return made


def load_keys(keys_dir: str | Path, name: str = "client") -> dict:
    """Keyword arguments for `DasClient` from a `das keygen` folder (server.key, NAME.key_secret)."""
    keys_dir = Path(keys_dir)
    server_file, client_file = keys_dir / "server.key", keys_dir / f"{name}.key_secret"
    for path in (server_file, client_file):
        if not path.is_file():
            raise DasError(f"{path} not found; copy the keys made by `das keygen` from the server machine")
    server_public, _ = zmq.auth.load_certificate(server_file)
    client_public, client_secret = zmq.auth.load_certificate(client_file)
    return {"server_public_key": server_public, "client_public_key": client_public, "client_secret_key": client_secret}
