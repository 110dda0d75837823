"""The subscribing side: a SUB socket that decodes label, segment and status messages.

:func:`decode_message` turns the two frames of one message into a
:class:`LabelMessage`, :class:`SegmentMessage` or :class:`StatusMessage`, or raises
:class:`MalformedMessage`. :class:`Subscriber` receives, decodes and counts the
malformed messages it skips (they never stop it). A message larger than
:data:`MAX_MESSAGE_BYTES` never reaches it: ZeroMQ drops the connection of a
peer that sends one and reconnects.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zmq

from finetec_live.wire.endpoints import parse_endpoint
from finetec_live.wire.keys import load_public_key, load_secret_key
from finetec_live.wire.messages import (
    MAX_MESSAGE_BYTES,
    LabelMessage,
    MalformedMessage,
    SegmentMessage,
    StatusMessage,
    check_stream_name,
    unpack,
)

log = logging.getLogger(__name__)

TOPIC_KINDS = {"label": LabelMessage, "segment": SegmentMessage, "status": StatusMessage}


@dataclass(frozen=True)
class Received:
    """One decoded message and the topic it came on."""

    topic: str
    message: LabelMessage | SegmentMessage | StatusMessage

    @property
    def kind(self) -> str:
        """``label``, ``segment`` or ``status``: the topic's first part."""
        return self.topic.partition(".")[0]

    @property
    def is_label(self) -> bool:
        return isinstance(self.message, LabelMessage)

    @property
    def is_segment(self) -> bool:
        return isinstance(self.message, SegmentMessage)


def decode_message(frames: Sequence[bytes]) -> Received:
    """Decode the frames of one message: ``[topic, payload]``.

    The topic must be ``label.<stream>``, ``segment.<stream>`` or ``status.<stream>``
    and name the payload's stream. Anything else raises :class:`MalformedMessage` (a
    ``ValueError``), never another exception.
    """
    if len(frames) != 2:
        raise MalformedMessage(f"a message has 2 frames (topic, payload), got {len(frames)}")
    topic_b, payload = frames
    try:
        topic = bytes(topic_b).decode("utf-8")
    except (UnicodeDecodeError, TypeError):
        raise MalformedMessage(f"topic {bytes(topic_b)[:40]!r} is not UTF-8") from None
    kind, _, stream = topic.partition(".")
    cls = TOPIC_KINDS.get(kind)
    try:
        if cls is None:
            raise ValueError(f"topic {topic[:40]!r} is none of label.<stream>, "
                             "segment.<stream>, status.<stream>")
        check_stream_name(stream)
    except ValueError as exc:
        raise MalformedMessage(str(exc)) from None
    message = cls.from_dict(unpack(payload))
    if message.topic != topic:
        raise MalformedMessage(f"topic {topic!r} carries a message of stream "
                               f"{message.stream!r}")
    return Received(topic, message)


class SeqGaps:
    """Windows not received, from the gaps in the ``seq`` of each person's labels.

    ``seq`` numbers the windows of a stream's grid, so between two labels of one person
    ``seq`` a and b, ``b - a - 1`` windows got no label here: dropped or skipped (the
    publisher's heartbeats count those), lost with a publisher or server that went down,
    or published while this subscriber was away. A ``seq`` that goes back is a producer
    that started again, not a gap. Counted from the first label received.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], int] = {}
        self.missing: dict[str, int] = {}  # stream -> windows not received
        self.gaps: dict[str, int] = {}  # stream -> how many stretches

    def update(self, stream: str, person: int, seq: int) -> int:
        """Take one label; the windows missing just before it."""
        key = (stream, int(person))
        last, self._last[key] = self._last.get(key), int(seq)
        if last is None or seq <= last + 1:
            return 0
        n = int(seq) - last - 1
        self.missing[stream] = self.missing.get(stream, 0) + n
        self.gaps[stream] = self.gaps.get(stream, 0) + 1
        return n

    @property
    def total(self) -> int:
        return sum(self.missing.values())


class Subscriber:
    """A connected SUB socket. ``receive`` returns the next good message; malformed
    ones are skipped and counted in ``malformed`` (the latest reason in
    ``last_error``); the windows between its labels that it did not receive are counted
    in ``gaps`` (:class:`SeqGaps`). Build it with :func:`open_subscriber`."""

    def __init__(self, socket: zmq.Socket, endpoint: str) -> None:
        self.socket = socket
        self.endpoint = endpoint
        self.received = 0
        self.malformed = 0
        self.last_error = ""
        self.gaps = SeqGaps()
        self._poller = zmq.Poller()
        self._poller.register(socket, zmq.POLLIN)

    def receive(self, timeout_ms: int = 200) -> Received | None:
        """The next good message, or None when none came within ``timeout_ms``."""
        deadline = time.monotonic() + timeout_ms / 1e3
        while True:
            left_ms = max(0, round((deadline - time.monotonic()) * 1e3))
            if not self._poller.poll(left_ms):
                return None
            frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
            try:
                got = decode_message(frames)
            except ValueError as exc:
                self.malformed += 1
                self.last_error = str(exc)
                log.debug("malformed message: %s", exc)
                if time.monotonic() >= deadline:
                    return None
                continue
            self.received += 1
            if got.kind == "label":
                m = got.message
                self.gaps.update(m.stream, m.person, m.seq)
            return got

    def close(self) -> None:
        self.socket.close(linger=0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_subscriber(endpoint: str, *, topics: Sequence[str] = ("label.",),
                    curve_server_key: str | os.PathLike | None = None,
                    curve_secret: str | os.PathLike | None = None,
                    context: zmq.Context | None = None) -> Subscriber:
    """Connect a SUB socket to ``endpoint`` for the topic prefixes ``topics``.

    With ``curve_server_key`` (the publisher's ``server.key``) the connection
    uses CURVE, as the client key pair in ``curve_secret`` (default: a fresh
    one, accepted only by a publisher with ``--curve-any-client`` or on
    loopback). Refusals are :class:`~finetec_live.errors.FinetecError`.
    """
    ep = parse_endpoint(endpoint, "--connect")
    server_key = load_public_key(curve_server_key) if curve_server_key else None
    client = load_secret_key(curve_secret) if curve_secret else None
    if client is None and server_key is not None:
        client = zmq.curve_keypair()
    sock = (context or zmq.Context.instance()).socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if ep.ipv6:
        sock.setsockopt(zmq.IPV6, 1)
    if server_key is not None:
        sock.curve_serverkey = server_key
        sock.curve_publickey, sock.curve_secretkey = client
    for t in topics:
        sock.setsockopt_string(zmq.SUBSCRIBE, t)
    sock.connect(endpoint)
    return Subscriber(sock, ep.text)


class ThrottledReport:
    """Report a growing count in at most one line per ``interval_s``: the first at
    once, then a summary of what came since. ``write`` takes one line."""

    def __init__(self, write: Callable[[str], None], what: str = "malformed messages",
                 interval_s: float = 5.0) -> None:
        self.write, self.what, self.interval_s = write, what, interval_s
        self.reported = 0
        self._last = -float("inf")

    def update(self, count: int, reason: str = "", now: float | None = None) -> bool:
        """Write a line when ``count`` grew and the interval has passed; True if written."""
        now = time.monotonic() if now is None else now
        if count <= self.reported or now - self._last < self.interval_s:
            return False
        new = count - self.reported
        self.write(f"warning: {new} {self.what} ignored ({count} in all)"
                   + (f"; last: {reason[:200]}" if reason else ""))
        self.reported, self._last = count, now
        return True
