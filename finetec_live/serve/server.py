"""One inference server for many streams: window messages in (PULL), labels out (PUB).

Producers (``finetec-live --serve``, or any program that writes the window message of
:mod:`finetec_live.wire.windows`) PUSH windows to the server's ``listen`` endpoint; a
receiving thread decodes them (a malformed message is counted, never fatal) into an
:class:`~finetec_live.serve.intake.Intake`; the serving loop takes batches (up to
``max_batch`` windows or ``max_wait_s``), runs kernels, model and the open-set decision
once per batch (:func:`~finetec_live.live.worker.classify_windows`), and publishes each
window's label exactly as ``finetec-live`` does (with a ``smoother``, averaged over each
stream's person's last windows; topic ``label.<stream>``, the
producer's ``stream`` and ``seq``), plus a ``status.<stream>`` heartbeat per stream once
a second with what was received, published, dropped (stale or over capacity), skipped
(too few posed frames or frames) and refused (another layout), and the server's count
of malformed messages.

The serving loop is the caller's (:meth:`Server.serve_forever` or :meth:`Server.step`);
the receiving thread is started by :meth:`Server.start`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import zmq

from finetec_live.inference.prepare import MIN_FRAMES
from finetec_live.inference.smoothing import Smoother
from finetec_live.live.worker import classify_windows
from finetec_live.serve.intake import Intake
from finetec_live.wire.endpoints import parse_endpoint
from finetec_live.wire.messages import MAX_MESSAGE_BYTES, MalformedMessage, StatusMessage
from finetec_live.wire.publisher import _bind, _check_security
from finetec_live.wire.windows import unpack_window

log = logging.getLogger(__name__)

#: Windows older than this when their batch is taken are dropped (s).
MAX_AGE_S = 0.5
#: Windows the intake holds at most.
CAPACITY = 8192


def open_puller(ctx: zmq.Context, endpoint: str, insecure: bool = False,
                curve_secret=None, curve_clients=None, any_client: bool = False):
    """``(socket, authenticator or None)``: a bound PULL socket for window messages, under
    the publisher's rules (a listen endpoint reachable from other machines needs CURVE or
    ``insecure``; with ``curve_clients`` only those producers' keys are let in, by an
    authenticator on ``ctx``, which the caller stops at the end)."""
    from finetec_live.wire.keys import load_secret_key, start_authenticator

    ep = parse_endpoint(endpoint, "--listen")
    _check_security(ep, curve_secret, curve_clients, any_client, insecure, "--listen")
    auth = start_authenticator(ctx, curve_clients) if curve_clients is not None else None
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.LINGER, 0)
    if ep.ipv6:
        sock.setsockopt(zmq.IPV6, 1)
    if curve_secret is not None:
        sock.curve_publickey, sock.curve_secretkey = load_secret_key(curve_secret)
        sock.curve_server = True
    try:
        _bind(sock, ep)
    except BaseException:
        sock.close(0)
        if auth is not None:
            auth.stop()
        raise
    return sock, auth


class Server:
    """Many producers' windows, one recognizer, batched."""

    def __init__(self, recognizer, puller: zmq.Socket, publisher, *, auth=None,
                 max_batch: int = 64,
                 max_wait_s: float = 0.02, max_age_s: float = MAX_AGE_S, topk: int = 5,
                 heartbeat_s: float = 1.0, capacity: int = CAPACITY,
                 smoother: Smoother | None = None) -> None:
        self.recognizer, self.puller, self.publisher = recognizer, puller, publisher
        self.auth = auth  # the producers' allow-list, stopped at close
        self.max_batch, self.max_wait_s, self.topk = int(max_batch), float(max_wait_s), topk
        self.intake = Intake(capacity, max_age_s)
        self.smoother = smoother  # each (stream, person)'s last windows averaged, or None
        self.heartbeat_s = heartbeat_s
        self.stop = threading.Event()
        self.malformed: Counter = Counter()  # reason -> messages
        self.published: Counter = Counter()  # stream -> labels
        self.skipped: Counter = Counter()  # stream -> too few frames / posed frames
        self.refused: Counter = Counter()  # stream -> another layout than the model's
        self.batches = 0
        self._t0 = self._last_beat = time.monotonic()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return self.puller.getsockopt_string(zmq.LAST_ENDPOINT)

    # ------------------------------------------------------------------ receiving
    def start(self) -> None:
        self._thread = threading.Thread(target=self._receive, name="finetec-serve-intake",
                                        daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        poller = zmq.Poller()
        poller.register(self.puller, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                if not poller.poll(100):
                    continue
                while True:
                    try:
                        frames = self.puller.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._accept(frames[-1], time.perf_counter())
        except BaseException as exc:  # reported by the serving loop
            self.error = exc
            self.stop.set()

    def _accept(self, payload: bytes, received: float) -> None:
        try:
            stream, window = unpack_window(payload)
        except MalformedMessage as exc:
            # counted by the field at fault (the message's first word), never by text a
            # producer chose: the counter stays small whatever arrives
            words = str(exc).removeprefix("window message:").split()
            self.malformed[words[0] if words else "?"] += 1
            if sum(self.malformed.values()) == 1:
                log.warning("malformed window message (%s); further ones are counted", exc)
            return
        self.intake.put(stream, window, received)

    # ------------------------------------------------------------------ serving
    def step(self, timeout: float = 0.1) -> int:
        """One batch (at most ``timeout`` s of waiting for a first window); the labels
        published."""
        batch = self.intake.take(self.max_batch, self.max_wait_s, timeout)
        keep = []
        for a in batch:
            w = a.window
            if w.layout != self.recognizer.layout:
                self.refused[a.stream] += 1
            elif w.num_frames < MIN_FRAMES or w.num_valid < 2:
                self.skipped[a.stream] += 1
            else:
                keep.append(a)
        if keep:
            results = classify_windows(self.recognizer, [a.window for a in keep],
                                       [a.stream for a in keep], self.topk,
                                       smoother=self.smoother)
            for a, r in zip(keep, results, strict=True):
                r.message.latency_ms["total"] = (time.perf_counter() - a.received) * 1e3
                self.publisher.send(r.message)
                self.published[a.stream] += 1
            self.batches += 1
        if time.monotonic() - self._last_beat >= self.heartbeat_s:
            self.heartbeat()
        return len(keep)

    def heartbeat(self, state: str = "running") -> None:
        now = time.monotonic()
        self._last_beat = now
        malformed = sum(self.malformed.values())
        for stream in sorted(self.intake.received):
            self.publisher.send(StatusMessage(
                stream=stream, fps=0.0, frames=0, pose_missing=0,
                windows=self.intake.received[stream], published=self.published[stream],
                dropped_windows=self.intake.dropped[stream],
                skipped_windows=self.skipped[stream], uptime_s=now - self._t0, state=state,
                wall_ns=time.time_ns(),
                extra={"server": "finetec-serve", "refused_windows": self.refused[stream],
                       "malformed_messages": malformed, "queued": len(self.intake),
                       "batches": self.batches}))

    def serve_forever(self) -> None:
        while not self.stop.is_set():
            self.step()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.stop.set()
        self.intake.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.heartbeat("stopped")
        self.puller.close(0)
        if self.auth is not None:
            self.auth.stop()

    def summary(self) -> dict:
        return {"received": sum(self.intake.received.values()),
                "published": sum(self.published.values()),
                "dropped": sum(self.intake.dropped.values()),
                "skipped": sum(self.skipped.values()), "refused": sum(self.refused.values()),
                "malformed": dict(self.malformed), "batches": self.batches,
                "streams": len(self.intake.received),
                "backend": self.recognizer.backend,
                "precision": self.recognizer.network_precision,
                "smoothed_windows": self.smoother.windows if self.smoother else 1,
                "tracks_evicted": self.smoother.evicted if self.smoother else 0}
