"""The inference side of the live command: classify a window, the worker loop, warm-up.

These are steps the command-line tool composes; none of them starts a thread
or opens a socket on its own. The capture thread (source + pose + buffer) puts
due windows into a :class:`Handoff`; the inference thread takes them,
:func:`classify_window` runs kernels, model and the open-set decision, and the
publisher sends the result; a :class:`~finetec_live.live.segments.Segmenter` turns the
labels into segments, published as each one ends. When inference falls behind, the
hand-off drops the stalest window and counts it: nothing ever waits for inference or
for a subscriber.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from finetec_live.inference.smoothing import Smoother
from finetec_live.inference.window import Window
from finetec_live.live.handoff import Handoff
from finetec_live.live.segments import Segment, Segmenter
from finetec_live.live.stats import Stats
from finetec_live.wire.messages import LabelMessage, SegmentMessage

#: Closed segments a worker keeps for the end-of-run timeline (the newest; all are
#: published and counted).
MAX_SEGMENTS_KEPT = 10_000


def enough_valid(window: Window, min_valid_fraction: float, min_valid_frames: int = 2,
                 min_frames: int = 8) -> bool:
    """Whether a window can be classified: at least ``min_frames`` ticks (the
    recognizer's minimum) and enough valid frames."""
    if window.num_frames < min_frames:
        return False
    return window.num_valid >= max(min_valid_frames,
                                   int(np.ceil(min_valid_fraction * window.num_frames)))


@dataclass
class Classified:
    """What the inference step produced for one window."""

    message: LabelMessage
    probs: np.ndarray
    completed_positions: np.ndarray | None = None  # (T, V, 2) when asked for
    kind: str = "class"  # the decision's: "class", "unknown" or "idle"


def classify_window(recognizer, window: Window, stream: str, topk: int = 5,
                    want_completion: bool = False, smoother: Smoother | None = None
                    ) -> Classified:
    """:func:`classify_windows` on one window."""
    return classify_windows(recognizer, [window], stream, topk, want_completion, smoother)[0]


def classify_windows(recognizer, windows: list[Window], stream: str | list[str], topk: int = 5,
                     want_completion: bool = False, smoother: Smoother | None = None
                     ) -> list[Classified]:
    """Kernels (``prepare``), model (``predict``) and the open-set decision
    (``decide``: the message's ``label`` and ``score``) on the windows of one hop (of
    several people), or of many streams (``stream``: one per window), timed; ``topk``
    ranks the classes by probability whatever the decision. Windows of different lengths
    are resampled apart (each to the model's T), then prepared and classified together;
    with ``want_completion``, one batch per length (the completion is mapped back to
    each window's own frames).

    With a ``smoother``, each window's probabilities and features are first averaged with
    its track's (``(stream, person)``) last windows, in the order of ``windows``; the
    decision, ``topk`` and ``probs`` are then those of the mean, and an ``idle`` window
    clears its track's history.

    ``latency_ms.total`` is left at 0: the worker sets it just before sending
    (from the reading of the window's newest frame to publication).
    """
    streams = [stream] * len(windows) if isinstance(stream, str) else list(stream)
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault(w.num_frames, []).append(i)
    out: list[Classified | None] = [None] * len(windows)
    if want_completion:
        for idx in groups.values():
            for i, c in zip(idx, _classify_batch(recognizer, [windows[i] for i in idx],
                                                 [streams[i] for i in idx], topk, smoother),
                            strict=True):
                out[i] = c
        return out  # type: ignore[return-value]
    t0 = time.perf_counter()
    batch = recognizer.prepare_groups([_arrays([windows[i] for i in idx])
                                       for idx in groups.values()])
    t1 = time.perf_counter()
    probs = np.asarray(recognizer.predict(batch))  # (B, K)
    t2 = time.perf_counter()
    order = [i for idx in groups.values() for i in idx]  # batch row -> window
    probs, decisions = _decide(recognizer, probs, batch, windows, streams, order, smoother)
    latency = {"pose": 0.0, "kernels": (t1 - t0 + time.perf_counter() - t2) * 1e3,
               "model": (t2 - t1) * 1e3, "total": 0.0}
    for k, i in enumerate(order):
        out[i] = _classified(recognizer, windows[i], streams[i], probs[k], decisions[k], None,
                             latency, topk)
    return out  # type: ignore[return-value]


def _arrays(windows: list[Window]):
    """``(positions, frame_valid, joint_valid, timestamps)`` of windows of one length."""
    return (np.stack([w.positions for w in windows]),  # (B, T, V, 2)
            np.stack([w.frame_valid for w in windows]),  # (B, T)
            np.stack([w.joint_valid for w in windows]),  # (B, T, V)
            np.stack([w.timestamps - w.timestamps[0] for w in windows]))  # (B, T)


def _decide(recognizer, probs: np.ndarray, batch, windows: list[Window], streams: list[str],
            order: list[int], smoother: Smoother | None):
    """``(probs, decisions)`` of the batch's rows (row ``k`` is window ``order[k]``): the
    smoothed probabilities when there is a ``smoother`` (pushed in the windows' order).

    A batch may hold several windows of one track (a server's backlog of a stream): they
    are decided in passes, each track's windows one per pass in their order, so that
    each window sees what the one before it left (its history, its held class, an
    ``idle`` reset), exactly as if they had come one at a time."""
    if smoother is None or smoother.windows == 1:  # each window alone, nothing held
        return probs, recognizer.decide(probs, batch)  # motion kernel's scores (idle)
    probs = np.array(probs, dtype=np.float32)  # (B, K), smoothed row by row below
    raw = batch.features  # (B, C) or None
    features = None if raw is None else np.array(raw, dtype=np.float32)
    row = {i: k for k, i in enumerate(order)}
    keys = [(streams[i], windows[i].person) for i in range(len(windows))]
    held = np.full(len(probs), -1, dtype=np.int64)  # (B,) each row's track's held class
    passes: list[list[int]] = []  # window indices, each track at most once per pass
    seen: dict = {}
    for i, key in enumerate(keys):
        n = seen[key] = seen.get(key, -1) + 1
        if n == len(passes):
            passes.append([])
        passes[n].append(i)
    decisions: list = [None] * len(probs)
    for part in passes:
        for i in part:
            k = row[i]
            p, f = smoother.push(keys[i], windows[i].t_end, probs[k],
                                 None if raw is None else raw[k])
            probs[k] = p
            held[k] = smoother.held(keys[i])
            if features is not None:
                features[k] = raw[k] if f is None else f
        rows = np.array([row[i] for i in part])
        for i, k, d in zip(part, rows, recognizer.decide(probs, batch, features, held, rows),
                           strict=True):
            decisions[k] = d
            smoother.decided(keys[i], d.kind, int(np.argmax(probs[k])))
    return probs, decisions


def _classify_batch(recognizer, windows: list[Window], streams: list[str],
                    topk: int, smoother: Smoother | None = None) -> list[Classified]:
    """Windows of one length as one batch, with the completion for the display."""
    pos, fv, jv, ts = _arrays(windows)
    t0 = time.perf_counter()
    batch = recognizer.prepare(pos, fv, jv, ts)
    t1 = time.perf_counter()
    completed = [None] * len(windows)
    if any(w.num_valid < w.num_frames for w in windows):
        # the one forward pass gives the completion too (for the display)
        probs, done = recognizer.predict(batch, with_completion=True)
        t2 = time.perf_counter()
        completed = list(recognizer.to_caller_frames(done, batch, pos, fv, jv, ts))
    else:
        probs = recognizer.predict(batch)
        t2 = time.perf_counter()
    probs, decisions = _decide(recognizer, np.asarray(probs), batch, windows, streams,
                               list(range(len(windows))), smoother)  # (B, K)
    latency = {"pose": 0.0, "kernels": (t1 - t0 + time.perf_counter() - t2) * 1e3,
               "model": (t2 - t1) * 1e3, "total": 0.0}
    return [_classified(recognizer, w, stream, p, decision, done, latency, topk)
            for w, stream, p, decision, done in zip(windows, streams, probs, decisions,
                                                    completed, strict=True)]


def _classified(recognizer, w: Window, stream: str, p: np.ndarray, decision, done,
                latency: dict, topk: int) -> Classified:
    names = recognizer.class_names
    order = np.argsort(-p)[: max(1, min(topk, len(names)))]
    missing = w.missing_fraction
    msg = LabelMessage(
        stream=stream, seq=w.seq, t_start=round(w.t_start * 1e9),
        t_end=round(w.t_end * 1e9), person=w.person, box=w.box,
        label=decision.label, score=float(decision.score),
        topk=[[names[i], float(p[i])] for i in order],
        missing=missing, completed=bool(recognizer.uses_completion and missing > 0),
        latency_ms=dict(latency, pose=w.pose_ms), model=str(recognizer.model_id),
        wall_ns=time.time_ns())
    return Classified(msg, p, done if w.num_valid < w.num_frames else None, decision.kind)


class InferenceWorker:
    """The body of the inference thread (the caller creates and joins the thread).

    Takes windows (one, or a list: the windows of one hop, of several people) from the
    hand-off, classifies them in one batch, publishes each label, each segment as it
    ends (with ``segments``, a factory of one :class:`Segmenter` per person; each
    person's open one when the hand-off is closed and drained), a heartbeat every
    ``heartbeat_s``, and a final ``stopped`` heartbeat. Any exception is kept in
    ``error`` and ``stop`` is set, so the capture thread ends too and the caller reports
    it. ``segments`` keeps the newest :data:`MAX_SEGMENTS_KEPT` closed segments,
    ``segments_published`` counts them all; ``latest`` maps each person to their newest
    classified window (for the display), ``newest`` is the newest of all.
    """

    def __init__(self, recognizer, handoff: Handoff, publisher, stats: Stats, stream: str,
                 stop: threading.Event, *, topk: int = 5, want_completion: bool = False,
                 on_label=None, heartbeat_s: float = 1.0,
                 segmenter=None, smoother: Smoother | None = None) -> None:
        self.recognizer, self.handoff, self.publisher = recognizer, handoff, publisher
        self.stats, self.stream, self.stop = stats, stream, stop
        self.topk, self.want_completion = topk, want_completion
        self.on_label = on_label  # callable(Classified) or None, e.g. --jsonl writer
        self.heartbeat_s = heartbeat_s
        self.error: BaseException | None = None
        self.latest: dict[int, Classified] = {}  # person -> newest (read by the display)
        self.newest: Classified | None = None
        self.segmenter = segmenter  # callable() -> Segmenter, or None
        self.smoother = smoother  # each person's last windows averaged, or None
        self._segmenters: dict[int, Segmenter] = {}
        self.segments: deque[Segment] = deque(maxlen=MAX_SEGMENTS_KEPT)
        self.segments_published = 0
        self._t_start = time.monotonic()
        self._last_beat = self._t_start
        self._last_frames = 0

    def heartbeat(self, state: str = "running") -> None:
        now = time.monotonic()
        frames = self.stats.frames
        dt = now - self._last_beat
        fps = (frames - self._last_frames) / dt if dt > 0 else 0.0
        self._last_beat, self._last_frames = now, frames
        self.stats.dropped_windows = self.handoff.dropped
        self.publisher.send(self.stats.status(self.stream, fps, now - self._t_start, state))

    def process(self, windows: Window | list[Window]) -> list[Classified]:
        windows = windows if isinstance(windows, list) else [windows]
        results = classify_windows(self.recognizer, windows, self.stream, self.topk,
                                   self.want_completion, self.smoother)
        for window, result in zip(windows, results, strict=True):
            lat = result.message.latency_ms
            lat["total"] = (time.perf_counter() - window.wall_last) * 1e3  # as late as can be
            self.publisher.send(result.message)
            published = time.perf_counter()
            lat = dict(lat, ready=(published - window.wall_ready) * 1e3
                       if window.wall_ready else 0.0)
            self.stats.add_latency(lat)
            self.stats.published += 1
            self.latest[window.person] = self.newest = result
            if self.on_label is not None:
                self.on_label(result)
            if self.segmenter is not None:
                m = result.message
                seg = self._segmenters.get(window.person)
                if seg is None:
                    seg = self._segmenters[window.person] = self.segmenter()
                self.publish_segment(seg.push(m.label, m.score, window.t_start, window.t_end,
                                              window.seq), window.person)
        return results

    def publish_segment(self, segment: Segment | None, person: int = 0) -> None:
        """Send a closed segment (None: nothing closed) and keep it for the timeline;
        segments are numbered over all people."""
        if segment is None:
            return
        segment = replace(segment, seq=self.segments_published, person=person)
        self.publisher.send(SegmentMessage(
            stream=self.stream, seq=segment.seq, person=person, label=segment.label,
            t_start=round(segment.t_start * 1e9), t_end=round(segment.t_end * 1e9),
            windows=segment.windows, votes=segment.votes, score=min(1.0, segment.score),
            first_window=segment.first_window, last_window=segment.last_window,
            model=str(self.recognizer.model_id), wall_ns=time.time_ns()))
        self.segments.append(segment)
        self.segments_published += 1

    def run(self) -> None:
        try:
            while True:
                window = self.handoff.get(timeout=0.05)
                if window is not None:
                    self.process(window)
                elif self.handoff.closed and len(self.handoff) == 0:
                    break
                if time.monotonic() - self._last_beat >= self.heartbeat_s:
                    self.heartbeat()
            for person, seg in self._segmenters.items():  # the stream ended: open ones too
                self.publish_segment(seg.flush(), person)
            self.heartbeat("stopped")
        except BaseException as exc:  # reported by the caller, in its thread
            self.error = exc
            self.stop.set()
            self.handoff.close()  # a capture thread waiting for room gives up


def warm_up(recognizer, window_s: float, fps: float, want_completion: bool = False,
            rounds: int = 2, batch: int = 1) -> float:
    """Run kernels and model on synthetic windows so the first real window does
    not pay for Numba's compilation (or cache loading) and torch's first call.

    The synthetic skeleton is the layout's tree laid out at unit bone length,
    swaying, with a quarter of its frames missing. Returns the seconds spent.
    """
    from finetec_live.inference.window import synthetic_window

    t0 = time.perf_counter()
    w = synthetic_window(recognizer.layout, max(8, round(window_s * fps)), fps)
    pos, fv, jv, ts = w.positions, w.frame_valid, w.joint_valid, w.timestamps
    for n in sorted({1, int(batch)}):  # a batch too: the kernels' parallel forms compile
        for _ in range(rounds):
            b = recognizer.prepare(*(np.repeat(a[None], n, axis=0) for a in (pos, fv, jv, ts)))
            recognizer.decide(recognizer.predict(b), b)
    if want_completion:
        for _ in range(rounds):
            recognizer.complete(pos[None], fv[None], jv[None], ts[None])
    return time.perf_counter() - t0
