"""Simulated producers for a server: real Penn Action windows sent as window messages.

:func:`penn_windows` cuts live-length windows from Penn Action's test clips (the
annotated skeletons, at the clips' frame rate); :func:`send_streams` pushes them as
``K`` streams at a fixed rate each (``seq`` from 0 per stream), optionally with
malformed messages mixed in, and records when each window was sent, so a subscriber
can measure send-to-label latency. Used by ``tools/bench_serve.py`` and the tests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from finetec_live.inference.window import Window
from finetec_live.wire.windows import pack_window

#: Messages that are not window messages: random bytes, a map missing keys, a bad shape.
MALFORMED = (b"\x00\xff\x13 not msgpack \xc1", b"\x82\xa1v\x01\xa6stream\xa3cam",
             b"\x81\xa1v\x01")


def penn_windows(n: int, window_s: float = 2.5, seed: int = 0, root=None,
                 dataset: str = "penn") -> tuple[list[Window], list[str]]:
    """``n`` windows of ``window_s`` seconds from Penn Action's test clips (or another
    annotated ``dataset``'s, such as ``"jhmdb"``), and each one's class name."""
    from finetec_live.data import load_dataset

    clips = [c for c in load_dataset(dataset, root).clips if c.split == "test"]
    rng = np.random.default_rng(seed)
    windows, truth = [], []
    while len(windows) < n:
        c = clips[int(rng.integers(len(clips)))]
        T = min(len(c.positions), max(8, round(window_s * c.fps)))
        start = int(rng.integers(0, len(c.positions) - T + 1))
        jv = c.joint_valid[start:start + T]
        fv = jv.any(1)
        if fv.sum() < 8:
            continue
        pos = np.where(jv[..., None], c.positions[start:start + T], 0.0)
        ts = np.arange(T) / c.fps
        windows.append(Window(pos, fv, jv, ts, t_start=0.0, t_end=T / c.fps,
                              layout=c.layout))
        truth.append(c.label_name)
    return windows, truth


def send_streams(socket, windows: list[Window], streams: int, rate_hz: float,
                 seconds: float, malformed_every: int = 0,
                 stop: threading.Event | None = None,
                 prefix: str = "cam") -> dict[tuple[str, int], tuple[float, int]]:
    """PUSH ``streams`` streams of ``windows`` (round robin) at ``rate_hz`` each for
    ``seconds``; every ``malformed_every``-th message is also followed by a malformed
    one. Streams are named ``prefix`` + a number. Returns ``{(stream, seq): (perf_counter
    at send, window index)}``."""
    sent: dict[tuple[str, int], tuple[float, int]] = {}
    period = 1.0 / rate_hz
    phase = np.linspace(0, period, streams, endpoint=False)
    t0 = time.perf_counter()
    k = n = 0
    while not (stop is not None and stop.is_set()):
        seq, s = divmod(k, streams)
        due = t0 + seq * period + phase[s]
        if due - t0 >= seconds:
            break
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        idx = (seq * streams + s) % len(windows)
        w = windows[idx]
        w = replace(w, seq=seq, t_start=seq * period, t_end=seq * period + w.t_end - w.t_start)
        name = f"{prefix}{s:04d}"
        payload = pack_window(w, name)
        sent[(name, seq)] = (time.perf_counter(), idx)
        socket.send(payload)
        n += 1
        if malformed_every and n % malformed_every == 0:
            socket.send(MALFORMED[(n // malformed_every) % len(MALFORMED)])
        k += 1
    return sent
