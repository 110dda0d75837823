"""ZeroMQ PUB publisher for label and status messages, with optional CURVE.

A PUB socket never waits for subscribers: a message for a slow or absent
subscriber is dropped by ZeroMQ at the high-water mark, so publishing never
stalls the pipeline. Binding to anything but loopback needs CURVE keys (the
traffic is encrypted and, with an allow-list of client keys, authenticated)
or an explicit ``insecure=True``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
from pathlib import Path

import zmq

from finetec_live.errors import FinetecError
from finetec_live.wire.messages import LabelMessage, StatusMessage

log = logging.getLogger(__name__)

DEFAULT_BIND = "tcp://127.0.0.1:5557"
_TCP_RE = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/]+|\*):(?P<port>\d+|\*)$")


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` can only be reached from this machine.

    ``ipc://`` and ``inproc://`` are local; ``tcp://`` is local when its host is
    in 127.0.0.0/8, ``::1`` or ``localhost``. ``*``, ``0.0.0.0``, interface
    names and other addresses are not.
    """
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    m = _TCP_RE.match(endpoint)
    if not m:
        return False
    host = m.group("host").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, option: str = "--bind") -> str:
    if endpoint.startswith(("ipc://", "inproc://")) or _TCP_RE.match(endpoint):
        return endpoint
    raise FinetecError(f"{option} {endpoint!r} is not a ZeroMQ endpoint; use e.g. "
                       "tcp://127.0.0.1:5557")


def generate_keys(directory: str | os.PathLike, names: tuple[str, ...] = ("server", "client"),
                  overwrite: bool = False) -> dict[str, tuple[Path, Path]]:
    """Write a CURVE key pair per name: ``NAME.key`` (public) and ``NAME.key_secret``.

    Returns ``{name: (public_file, secret_file)}``. Existing files are kept
    unless ``overwrite``: a :class:`FinetecError` names them.
    """
    import zmq.auth

    if not zmq.has("curve"):
        raise FinetecError("this libzmq has no CURVE support; install pyzmq from its wheels")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        pub, sec = d / f"{name}.key", d / f"{name}.key_secret"
        if not overwrite and (pub.exists() or sec.exists()):
            raise FinetecError(f"key files for {name!r} already exist in {d}; remove them or "
                               "choose another directory")
        p, s = zmq.auth.create_certificates(str(d), name)
        os.chmod(s, 0o600)
        out[name] = (Path(p), Path(s))
    return out


def _load_certificate(path: str | os.PathLike, part: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a key file written by ``finetec-live keygen``."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise FinetecError(f"cannot read CURVE key file {path} ({exc}); generate keys with "
                           "`finetec-live keygen DIR`") from None
    if not (public if part == "public" else secret):
        suffix = ".key" if part == "public" else ".key_secret"
        raise FinetecError(f"{path} holds no {part} key; pass the NAME{suffix} file written "
                           "by `finetec-live keygen DIR`")
    return public, secret


def load_public_key(path: str | os.PathLike) -> bytes:
    """The public key of a ``NAME.key`` (or ``NAME.key_secret``) file."""
    return _load_certificate(path, "public")[0]


def load_secret_key(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``NAME.key_secret`` file."""
    return _load_certificate(path, "secret")


def start_authenticator(context: zmq.Context, clients_dir: str | os.PathLike):
    """Allow only the client public keys found in ``clients_dir`` (``*.key``).

    Starts ZeroMQ's authenticator thread; the caller owns it, starts it before
    binding the :class:`Publisher` on the same context (a connection accepted
    before the authenticator runs is not checked) and calls ``.stop()`` at exit.
    """
    from zmq.auth.thread import ThreadAuthenticator

    d = Path(clients_dir)
    if not d.is_dir() or not list(d.glob("*.key")):
        raise FinetecError(f"--curve-clients {d} holds no *.key public key files; copy the "
                           "clients' NAME.key files there")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(d))
    return auth


class Publisher:
    """A bound PUB socket sending :class:`LabelMessage` / :class:`StatusMessage`.

    Not thread-safe (a ZeroMQ socket belongs to one thread): call ``send`` from
    the thread that publishes.
    """

    def __init__(self, endpoint: str = DEFAULT_BIND, *, curve_secret: str | os.PathLike | None
                 = None, insecure: bool = False, context: zmq.Context | None = None,
                 sndhwm: int = 1000, linger_ms: int = 1000) -> None:
        check_endpoint(endpoint)
        if not is_loopback(endpoint) and curve_secret is None and not insecure:
            raise FinetecError(f"--bind {endpoint} is reachable from other machines; pass "
                               "--curve-secret FILE (make keys with `finetec-live keygen DIR`) "
                               "or --insecure to publish unencrypted")
        self.endpoint = endpoint
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, sndhwm)
        self.socket.setsockopt(zmq.LINGER, linger_ms)
        self.curve = curve_secret is not None
        if curve_secret is not None:
            public, secret = load_secret_key(curve_secret)
            self.socket.curve_secretkey = secret
            self.socket.curve_publickey = public
            self.socket.curve_server = True
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(linger=0)
            if exc.errno == errno.EADDRINUSE:
                raise FinetecError(f"address {endpoint} is already in use (another finetec-live?);"
                                   " stop that process or pass --bind with another port") from None
            raise FinetecError(f"cannot bind {endpoint} ({exc}); pass --bind with a local "
                               "address such as tcp://127.0.0.1:5557") from None
        self.sent = 0
        self.dropped = 0
        log.debug("bound %s%s", endpoint, " (CURVE)" if self.curve else "")

    @property
    def last_endpoint(self) -> str:
        """The bound endpoint with a wildcard port resolved."""
        return self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, message: LabelMessage | StatusMessage) -> bool:
        """Publish one message; never blocks. False when ZeroMQ refused it."""
        try:
            self.socket.send_multipart([message.topic.encode(), message.pack()],
                                       flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
