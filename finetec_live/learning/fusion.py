"""Several window lengths ending at the same time, fused into one decision.

The live path classifies one window per hop, ``window_seconds`` long (the
checkpoint's). Here the windows keep the live path's schedule (the same
:class:`~finetec_live.live.timeline.PersonTimeline`, hop and end times), and each
due window is also cut at other lengths, ``factor * window_seconds``, ending at the
same time; the model resamples each to its own grid (every window is resampled by
time). Each length's window that passes the ``--min-valid`` rule is classified;
their class probabilities are fused by a rule of :data:`RULES`:

- ``mean``: the mean of the probabilities;
- ``logmean``: the mean of the log-probabilities, renormalised (the geometric mean).

The open-set decision (:func:`~finetec_live.inference.openset.decide`) then runs on
the fused probabilities, with the mean of the lengths' region-motion scores (idle)
and of their network features (the class-prototype rule), against the thresholds
calibrated on single windows. With the factors ``(1,)`` this is the live path's
answer, window for window. Near a video's start a long window holds only the ticks
since the first one (as a live buffer would).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.learning.videos import VideoResult, cached_poses

log = logging.getLogger(__name__)

RULES = ("mean", "logmean")


@dataclass
class LengthOutput:
    """What the model made of one window: probabilities ``(K,)``, region-motion scores
    ``(R,)`` (empty without an open set), network features ``(C,)`` or None, and the
    window's missing fraction."""

    probs: np.ndarray
    motion: np.ndarray
    features: np.ndarray | None
    missing: float


def parse_factors(text: str) -> tuple[float, ...]:
    """``"0.75,1,1.5"`` -> ``(0.75, 1.0, 1.5)``: positive window-length factors."""
    try:
        factors = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise FinetecError(f"window-length factors {text!r}: numbers separated by commas, "
                           "e.g. 0.75,1,1.5") from None
    if not factors or not all(math.isfinite(f) and f > 0 for f in factors):
        raise FinetecError(f"window-length factors {text!r}: give positive numbers, "
                           "e.g. 0.75,1,1.5")
    return factors


def _open_set(recognizer):
    return recognizer.open_set if recognizer.open_set_enabled else None


def classify_one(recognizer, window) -> LengthOutput:
    """The steps of :func:`~finetec_live.live.worker.classify_window` before the
    decision, kept apart so several windows can be fused."""
    ts = window.timestamps - window.timestamps[0]
    batch = recognizer.prepare(window.positions[None], window.frame_valid[None],
                               window.joint_valid[None], ts[None])
    probs = np.asarray(recognizer.predict(batch))[0]
    motion = (recognizer.motion_scores(batch)[0] if _open_set(recognizer) is not None
              else np.zeros(0, np.float32))
    features = None if batch.features is None else np.asarray(batch.features)[0]
    return LengthOutput(probs, np.asarray(motion, np.float64), features,
                        window.missing_fraction)


def window_outputs(recognizer, recording: Path, factors: Sequence[float],
                   min_valid: float = 0.2, min_visibility: float = 0.5
                   ) -> list[dict[float, LengthOutput]]:
    """Per window of the live schedule of pose recording ``recording``, the output of
    each length ``factor * window_seconds`` ending at the same time whose window
    passes the ``min_valid`` rule (``{}``: none did)."""
    from finetec_live.inference.prepare import MIN_FRAMES
    from finetec_live.live.buffer import RingBuffer
    from finetec_live.live.recording import KeypointSource
    from finetec_live.live.timeline import PersonTimeline
    from finetec_live.live.worker import enough_valid

    source = KeypointSource(recording, realtime=False)
    length, hop = float(recognizer.window_seconds), float(recognizer.hop_seconds)
    timeline = PersonTimeline(recognizer.layout, length, hop, 1.0 / source.fps)
    need = math.ceil((max(factors) * length + hop) * source.fps * 2.0) + 16
    if timeline.ring.capacity < need:  # room for the longest window (the schedule unchanged)
        ring = timeline.ring
        timeline.ring = RingBuffer(need, ring.num_joints, ring.channels, ring.layout)
    tol = timeline.windower.tol
    out: list[dict[float, LengthOutput]] = []

    def take(windows) -> None:
        for w in windows:
            if w is None:
                continue
            hi = w.t_end - tol  # the end of the tick-selection interval [lo, hi)
            got = {}
            for f in factors:
                wf = w if f == 1.0 else timeline.ring.window(hi - f * length, hi)
                if enough_valid(wf, min_valid, min_frames=MIN_FRAMES):
                    got[f] = classify_one(recognizer, wf)
            out.append(got)

    for frame in source:
        take(timeline.push(frame.pose.to_layout(recognizer.layout, min_visibility)))
    take([timeline.flush()])
    return out


def fuse(outputs: Sequence[LengthOutput], rule: str = "mean") -> LengthOutput:
    """One output from several lengths' (see the module's rules)."""
    if rule not in RULES:
        raise FinetecError(f"fusion rule {rule!r}: one of {', '.join(RULES)}")
    if not outputs:
        raise ValueError("nothing to fuse")
    probs = np.stack([o.probs for o in outputs]).astype(np.float64)
    if rule == "mean":
        fused = probs.mean(0)
    else:
        logp = np.log(np.clip(probs, 1e-12, None)).mean(0)
        fused = np.exp(logp - logp.max())
    fused /= fused.sum()
    feats = [o.features for o in outputs]
    return LengthOutput(fused.astype(np.float32),
                        np.mean([o.motion for o in outputs], axis=0),
                        None if any(f is None for f in feats) else np.mean(feats, axis=0),
                        float(np.mean([o.missing for o in outputs])))


def decided_windows(recognizer, windows: Sequence[dict[float, LengthOutput]],
                    factors: Sequence[float], rule: str = "mean", smooth: int = 1):
    """Per window of the live schedule, ``(decision, output)`` with the lengths ``factors``
    fused by ``rule``, then smoothed over the last ``smooth`` windows as the live path
    does (:class:`~finetec_live.inference.smoothing.Smoother`, one hop between windows);
    ``None`` for a window none of whose lengths passed the ``min_valid`` rule."""
    from finetec_live.inference.openset import decide
    from finetec_live.inference.smoothing import Smoother

    hop = float(recognizer.hop_seconds)
    smoother = Smoother(smooth, hop)
    out = []
    for i, got in enumerate(windows):
        parts = [got[f] for f in factors if f in got]
        if not parts:
            out.append(None)
            continue
        o = parts[0] if len(parts) == 1 else fuse(parts, rule)
        probs, feats = smoother.push(0, i * hop, o.probs, o.features)
        d = decide(probs[None], o.motion[None], recognizer.class_names,
                   _open_set(recognizer), None if feats is None else feats[None],
                   np.array([smoother.held(0)]))[0]
        smoother.decided(0, d.kind, int(np.argmax(probs)))
        out.append((d, o))
    return out


def fused_result(recognizer, windows: Iterable[dict[float, LengthOutput]],
                 factors: Sequence[float], rule: str, truth: str | None,
                 video: Path, smooth: int = 1) -> VideoResult:
    """The video's labels by :func:`decided_windows`; a skipped window is counted."""
    result = VideoResult(Path(video), truth)
    for got in decided_windows(recognizer, list(windows), factors, rule, smooth):
        if got is None:
            result.skipped += 1
            continue
        d, o = got
        result.labels.append(d.label)
        result.scores.append(float(d.score))
        result.missing.append(o.missing)
    return result


def change_delays(recognizer, labelled, smooth: int, factors: Sequence[float] = (1.0,),
                  rule: str = "mean", lead: int = 12) -> list[int | None]:
    """How many windows after a change of action the label first names the new class.

    For every ordered pair of videos ``(A, B)`` of different classes (``labelled``: the
    ``(video, truth, windows)`` of :func:`evaluate_outputs`), the last ``lead`` windows of
    A are followed by B's windows; per pair, the index of B's first window labelled B's
    class (None: none is). Windows are joined at the output level, so no window spans
    both videos: this measures what the smoothing adds to the delay, not the window's own
    length.
    """
    out = []
    for _, truth_a, wa in labelled:
        for _, truth_b, wb in labelled:
            if truth_a == truth_b:
                continue
            head = list(wa[-lead:])
            seq = decided_windows(recognizer, head + list(wb), factors, rule, smooth)
            hit = next((j for j, got in enumerate(seq[len(head):])
                        if got is not None and got[0].label == truth_b), None)
            out.append(hit)
    return out


def evaluate_outputs(recognizer, videos: Iterable[tuple[Path, str | None]], cache_dir: Path,
                     factors: Sequence[float], progress: bool = True
                     ) -> list[tuple[Path, str | None, list[dict[float, LengthOutput]]]]:
    """:func:`window_outputs` of every video (poses from the cache, made once), for
    :func:`fused_result` to fuse by any subset of ``factors`` and any rule."""
    from tqdm import tqdm

    factors = tuple(sorted(set(factors)))
    done = []
    for video, truth in tqdm(list(videos), desc="videos", disable=not progress, unit="video"):
        done.append((video, truth, window_outputs(recognizer, cached_poses(video, cache_dir),
                                                  factors)))
    log.info("%d videos, lengths %s x %g s", len(done), factors, recognizer.window_seconds)
    return done


def paired_comparison(results: Sequence[VideoResult], baseline: Sequence[VideoResult]) -> dict:
    """Video by video against ``baseline`` (the same videos, in order): how many have a
    higher / lower share of right windows, the two-sided sign test's p of that split, and
    how many majorities became right / wrong."""
    better = worse = made_right = made_wrong = 0
    for r, b in zip(results, baseline, strict=True):
        if r.path != b.path:
            raise ValueError(f"{r.path} paired with {b.path}: the same videos expected")
        acc_r = r.windows_right / max(len(r.labels), 1)
        acc_b = b.windows_right / max(len(b.labels), 1)
        better += acc_r > acc_b + 1e-9
        worse += acc_r < acc_b - 1e-9
        made_right += r.majority == r.truth and b.majority != b.truth
        made_wrong += r.majority != r.truth and b.majority == b.truth
    n, k = better + worse, min(better, worse)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"better": better, "worse": worse, "sign_p": p, "made_right": made_right,
            "made_wrong": made_wrong}
