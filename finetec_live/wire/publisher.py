"""The ZeroMQ PUB publisher of label, segment and status messages, with optional CURVE.

:func:`open_publisher` is the one step a command calls: it checks the endpoint
and the security options, starts the authenticator when subscribers are checked
against an allow-list, and binds. The rules:

- a bind reachable from other machines (anything but 127.0.0.0/8, ``::1``,
  ``localhost`` and ``ipc://``) needs CURVE (``curve_secret``) or an explicit
  ``insecure=True``;
- with CURVE beyond loopback, subscribers are authenticated against the public
  keys in ``curve_clients``; ``any_client=True`` instead accepts anyone who holds
  the server's public key (encryption only); with neither, the bind is refused.
"""

from __future__ import annotations

import errno
import logging
import os

import zmq

from finetec_live.errors import FinetecError
from finetec_live.wire.endpoints import DEFAULT_BIND, Endpoint, claim_ipc_path, parse_endpoint
from finetec_live.wire.keys import check_clients_dir, load_secret_key, start_authenticator
from finetec_live.wire.messages import (
    MAX_MESSAGE_BYTES,
    LabelMessage,
    SegmentMessage,
    StatusMessage,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BIND", "Publisher", "open_publisher"]


class Publisher:
    """A bound PUB socket sending :class:`LabelMessage`, :class:`SegmentMessage` and
    :class:`StatusMessage`.

    Build it with :func:`open_publisher` (same arguments). ``send`` never blocks:
    ZeroMQ queues up to ``sndhwm`` messages per subscriber and silently drops the
    rest for a slow (or stalled) subscriber, without telling the publisher;
    subscribers see the loss as gaps in ``seq``. The publisher owns its
    authenticator (when it has one) and its private context (when it made one):
    :meth:`close` stops both.

    Not thread-safe (a ZeroMQ socket belongs to one thread): call ``send`` from
    the thread that publishes.
    """

    def __init__(self, endpoint: str = DEFAULT_BIND, *,
                 curve_secret: str | os.PathLike | None = None,
                 curve_clients: str | os.PathLike | None = None, any_client: bool = False,
                 insecure: bool = False, context: zmq.Context | None = None,
                 sndhwm: int = 1000, linger_ms: int = 1000) -> None:
        ep = parse_endpoint(endpoint, "--bind")
        _check_security(ep, curve_secret, curve_clients, any_client, insecure)
        keys = load_secret_key(curve_secret) if curve_secret is not None else None
        if curve_clients is not None:
            check_clients_dir(curve_clients)
        self._own_context = (zmq.Context() if curve_clients is not None and context is None
                             else None)
        self.context = context or self._own_context or zmq.Context.instance()
        self._auth = None
        self.socket = None
        self._closed = False
        try:
            if curve_clients is not None:  # before the bind: earlier connections go unchecked
                self._auth = start_authenticator(self.context, curve_clients)
            self.socket = _pub_socket(self.context, ep, keys, sndhwm, linger_ms)
            _bind(self.socket, ep)
        except BaseException:
            self.close(linger=0)
            raise
        self.requested = endpoint
        #: the bound endpoint, an ephemeral port resolved (for the log line)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        self.curve = keys is not None
        self.authenticated = self._auth is not None
        self.sent = 0
        log.debug("bound %s%s", self.endpoint, " (CURVE, allow-list)" if self._auth
                  else " (CURVE)" if keys else "")

    def send(self, message: LabelMessage | SegmentMessage | StatusMessage) -> None:
        """Publish one message (two frames: topic, msgpack payload); never blocks."""
        self.socket.send_multipart([message.topic.encode(), message.pack()], flags=zmq.NOBLOCK)
        self.sent += 1

    def close(self, linger: int | None = None) -> None:
        """Close the socket (pending messages get LINGER ms to leave), then stop the
        authenticator and a private context. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.socket is not None:
            self.socket.close(linger=linger)
        if self._auth is not None:
            self._auth.stop()
        if self._own_context is not None:
            self._own_context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_security(ep: Endpoint, curve_secret, curve_clients, any_client: bool,
                    insecure: bool, option: str = "--bind") -> None:
    if curve_clients is not None and curve_secret is None:
        raise FinetecError("--curve-clients needs --curve-secret (the server key pair from "
                           "`finetec-live keygen DIR`)")
    if any_client and curve_secret is None:
        raise FinetecError("--curve-any-client needs --curve-secret (the server key pair from "
                           "`finetec-live keygen DIR`)")
    if any_client and curve_clients is not None:
        raise FinetecError("--curve-clients and --curve-any-client contradict each other; pass "
                           "--curve-clients DIR to accept only those clients, or drop it")
    if ep.loopback:
        return
    if curve_secret is None and not insecure:
        raise FinetecError(f"{option} {ep.text} is reachable from other machines; pass "
                           "--curve-secret FILE (make keys with `finetec-live keygen DIR`) "
                           "or --insecure to send unencrypted")
    if curve_secret is not None and curve_clients is None and not any_client:
        raise FinetecError(f"{option} {ep.text} is reachable from other machines and "
                           "--curve-secret alone lets anyone with server.key connect; pass "
                           "--curve-clients DIR (the allowed clients' *.key files) or "
                           "--curve-any-client to accept any client")


def _bind(sock: zmq.Socket, ep: Endpoint) -> None:
    claim_ipc_path(ep)
    try:
        sock.bind(ep.text)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FinetecError(f"address {ep.text} is already in use (another finetec-live?); "
                               "stop that process or pass --bind with another port") from None
        raise FinetecError(f"cannot bind {ep.text} ({exc}); pass --bind with a local "
                           "address such as tcp://127.0.0.1:5557") from None


def _pub_socket(ctx: zmq.Context, ep: Endpoint, keys: tuple[bytes, bytes] | None,
                sndhwm: int, linger_ms: int) -> zmq.Socket:
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if ep.ipv6:
        sock.setsockopt(zmq.IPV6, 1)
    if keys is not None:
        sock.curve_publickey, sock.curve_secretkey = keys
        sock.curve_server = True
    return sock


def open_publisher(endpoint: str = DEFAULT_BIND, *, curve_secret: str | os.PathLike | None = None,
                   curve_clients: str | os.PathLike | None = None, any_client: bool = False,
                   insecure: bool = False, context: zmq.Context | None = None,
                   sndhwm: int = 1000, linger_ms: int = 1000) -> Publisher:
    """Check the options, start the authenticator (with ``curve_clients``) and bind.

    ``endpoint`` may use port ``0`` or ``*`` for a free port: the returned
    publisher's ``endpoint`` holds the one bound. With ``curve_clients`` and no
    ``context``, the publisher gets a private context, since ZeroMQ's
    authenticator answers for every socket of its context. Every refusal is a
    :class:`FinetecError` of one line; nothing is left running after one.
    """
    return Publisher(endpoint, curve_secret=curve_secret, curve_clients=curve_clients,
                     any_client=any_client, insecure=insecure, context=context, sndhwm=sndhwm,
                     linger_ms=linger_ms)
