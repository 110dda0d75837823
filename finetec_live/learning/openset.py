"""Calibrating and measuring the open-set decision (:mod:`finetec_live.inference.openset`).

Calibration uses training data only: the Penn validation clips (held out of training, in
both joint conventions), the J-HMDB clips of other actions held out of outlier exposure
(:func:`finetec_live.data.outliers.split_outliers`) and *still windows*, one real pose of a
training clip held for a live window with a pose estimator's jitter. Every clip gives its
whole length and live-window crops, each resampled to the model's grid as the evaluation
does.

- ``idle_floor`` is the lower of the ``idle_quantile`` quantile of the largest region
  motion score of the Penn validation windows (that share of real actions would be called
  idle) and ``STILL_MARGIN`` times the ``STILL_QUANTILE`` quantile of the still windows'
  (enough to call them idle, no more).
- ``unknown_below`` is the level of the top class probability under which
  ``outlier_rejection`` of the held-out outlier windows that are not idle fall (default);
  or, with ``outlier_rejection`` 0, the ``unknown_quantile`` quantile of the top class
  probability of the Penn validation windows that are not idle.

:func:`rates` applies a calibrated model to any such sets (:func:`test_sets`, the test
splits, for the report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.inference.openset import IDLE, UNKNOWN, OpenSet, decide
from finetec_live.inference.preprocess import resample_batch
from finetec_live.skeleton.layouts import get_layout

log = logging.getLogger(__name__)

IDLE_QUANTILE = 0.01
UNKNOWN_QUANTILE = 0.02
# the default unknown rule: the top probability below which this share of the held-out
# outlier windows (J-HMDB's other actions) falls. Chosen on the development videos,
# cross-validated by source: it kept 19 % of the other-action videos' majorities a sport
# at 53 % of windows right, against 2 % at 40 % for UNKNOWN_QUANTILE of the inliers.
OUTLIER_REJECTION = 0.98
# the hysteresis (OpenSet.hold_below): a track's held class continues down to this factor
# of the unknown threshold (None: no hold). Chosen on the development videos,
# cross-validated by source: 511 / 801 windows and 25 / 40 videos right with 9 of 52
# other-action majorities a sport, against 502, 23 and 8 without (0.6: 516, 25, 10).
HOLD = 0.8
# a still person through a pose estimator: per-joint jitter, as a fraction of the
# kernel's body size (RMS distance of the joints to their centroid). MediaPipe on the
# development set's plank hold gives region scores of 0.0003-0.0009, i.e. about 0.012-0.02.
STILL_JITTER = (0.003, 0.02)
STILL_DRIFT = 0.004  # slow drift of the whole body over the window, same units
# the idle floor needs no more than this margin over this quantile of the still windows
STILL_QUANTILE = 0.99
STILL_MARGIN = 1.5


@dataclass
class WindowSet:
    """Windows on the model's grid: ``positions (N, T, V, 2)``, ``frame_valid (N, T)``,
    ``joint_valid (N, T, V)``, ``timestamps (N, T)``, ``labels (N,)`` (-1: none of the
    classes) and ``source (N,)`` the clip each came from."""

    positions: np.ndarray
    frame_valid: np.ndarray
    joint_valid: np.ndarray
    timestamps: np.ndarray
    labels: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def concat_windows(*sets: WindowSet) -> WindowSet:
    """One :class:`WindowSet` of the windows of ``sets``, in order."""
    return WindowSet(*(np.concatenate([getattr(w, f) for w in sets]) for f in
                       ("positions", "frame_valid", "joint_valid", "timestamps", "labels",
                        "source")))


def clip_windows(clips, T: int, window_s: float = 2.5, hop_s: float = 1.25,
                 whole: bool = True, crops: bool = True, outlier: bool = False) -> WindowSet:
    """Each clip whole and cut into ``window_s`` windows every ``hop_s`` (clips no longer
    than a window give it once), resampled to ``T``; labels -1 when ``outlier``."""
    parts, labels, source = [], [], []
    for i, c in enumerate(clips):
        ts = c.timestamps()
        spans = [(0, c.num_frames)] if whole else []
        n = round(window_s * c.fps)
        if crops and c.num_frames > n:
            step = max(1, round(hop_s * c.fps))
            spans += [(s, s + n) for s in range(0, c.num_frames - n + 1, step)]
        elif crops and not whole:
            spans = [(0, c.num_frames)]
        for a, b in spans:
            parts.append(resample_batch(c.positions[None, a:b], np.ones((1, b - a), bool),
                                        c.joint_valid[None, a:b], ts[None, a:b] - ts[a], T))
            labels.append(-1 if outlier else c.label)
            source.append(i)
    pos, fv, jv, tt = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return WindowSet(pos, fv, jv, tt, np.array(labels), np.array(source))


def still_windows(clips, n: int, T: int, rng: np.random.Generator, window_s: float = 2.5,
                  jitter: tuple[float, float] = STILL_JITTER, drift: float = STILL_DRIFT,
                  layout: str = "penn13") -> WindowSet:
    """``n`` windows of one real pose held: a random frame (with at least half its joints;
    a :class:`FinetecError` when no clip has one) of a random clip, repeated over
    ``window_s`` on ``T`` samples, with per-joint Gaussian jitter of a standard deviation
    drawn from ``jitter`` and a slow drift up to ``drift`` (fractions of the pose's body
    size)."""
    lay = get_layout(layout)
    V = lay.num_joints
    pos = np.zeros((n, T, V, 2), np.float32)
    jv = np.zeros((n, T, V), bool)
    steps = np.linspace(0.0, 1.0, T)[:, None, None]  # the drift's course
    if not any((c.joint_valid.sum(1) >= (V + 1) // 2).any() for c in clips):
        raise FinetecError("no frame of these clips shows at least half the body; still "
                           "windows (for idle) need some that do")
    k = 0
    while k < n:  # rejection sampling: ends, since an eligible frame exists
        c = clips[int(rng.integers(len(clips)))]
        t = int(rng.integers(c.num_frames))
        ok = c.joint_valid[t]
        if ok.sum() < (V + 1) // 2:
            continue
        p = c.positions[t]
        ctr = p[ok].mean(0)
        size = float(np.sqrt(((p[ok] - ctr) ** 2).sum(1).mean()))
        sig = rng.uniform(*jitter) * size
        way = rng.normal(size=(1, 1, 2)) * drift * size
        pos[k] = p[None] + steps * way + rng.normal(size=(T, V, 2)) * sig
        jv[k] = ok[None]
        k += 1
    ts = np.broadcast_to(np.linspace(0.0, window_s, T), (n, T)).copy()
    return WindowSet(pos, np.ones((n, T), bool), jv, ts, np.full(n, -1), np.arange(n))


def outputs(recognizer, windows: WindowSet, batch: int = 256
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(probs (N, K), motion (N, R), features (N, C) or None)`` of ``recognizer`` on
    ``windows`` (features: the network's pooled ones, when it gives them)."""
    probs, motion, feats = [], [], []
    for s in range(0, len(windows), batch):
        sl = slice(s, s + batch)
        b = recognizer.prepare(windows.positions[sl], windows.frame_valid[sl],
                               windows.joint_valid[sl], windows.timestamps[sl])
        probs.append(recognizer.predict(b))
        motion.append(recognizer.motion_scores(b))
        feats.append(b.features)
    f = None if any(x is None for x in feats) else np.concatenate(feats)
    return np.concatenate(probs), np.concatenate(motion), f


def scores(recognizer, windows: WindowSet, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, K), motion (N, R))`` of ``recognizer`` on ``windows``."""
    return outputs(recognizer, windows, batch)[:2]


def prototypes(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's prototype ``(K, C)``: the normalised mean of its windows' unit
    features (``labels (N,)`` class indices; every class needs a window)."""
    f = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    missing = [k for k in range(num_classes) if not (labels == k).any()]
    if missing:
        raise ValueError(f"no windows of classes {missing} to make their prototypes from")
    means = np.stack([f[labels == k].mean(0) for k in range(num_classes)])
    return (means / np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


def calibrate(recognizer, inliers: WindowSet, outliers: WindowSet, still: WindowSet,
              idle_quantile: float = IDLE_QUANTILE,
              unknown_quantile: float = UNKNOWN_QUANTILE,
              outlier_rejection: float | None = OUTLIER_REJECTION,
              hold: float | None = HOLD) -> OpenSet:
    """The thresholds (see the module docstring), with the rates they give on the
    calibration sets in ``calibration``. With ``outlier_rejection`` (a share), the unknown
    threshold is instead the level that rejects that share of the moving outlier
    windows; ``unknown_quantile`` is then unused. ``hold``: see :func:`with_hold`."""
    p_in, m_in = scores(recognizer, inliers)
    p_out, m_out = scores(recognizer, outliers)
    p_still, m_still = scores(recognizer, still)
    action_floor = float(np.quantile(m_in.max(1), idle_quantile))
    still_floor = STILL_MARGIN * float(np.quantile(m_still.max(1), STILL_QUANTILE))
    idle_floor = min(action_floor, still_floor)
    if outlier_rejection:
        moving = m_out.max(1) > idle_floor
        unknown_below = float(np.quantile(p_out.max(1)[moving], outlier_rejection))
    else:
        moving = m_in.max(1) > idle_floor
        unknown_below = float(np.quantile(p_in.max(1)[moving], unknown_quantile))
    rule = OpenSet(unknown_below, idle_floor)
    cal = {"inlier_windows": len(inliers), "outlier_windows": len(outliers),
           "still_windows": len(still), "idle_quantile": idle_quantile,
           "unknown_rule": (f"rejects {outlier_rejection:g} of the moving outlier windows"
                            if outlier_rejection else
                            f"{unknown_quantile:g} quantile of the moving inlier windows"),
           "unknown_quantile": None if outlier_rejection else unknown_quantile,
           "outlier_rejection": outlier_rejection or None, "action_floor": action_floor,
           "still_floor": still_floor}
    for name, ws, probs, motion in (("inlier", inliers, p_in, m_in),
                                    ("outlier", outliers, p_out, m_out),
                                    ("still", still, p_still, m_still)):
        r = _rates(recognizer.class_names, ws.labels, probs, motion, rule)
        cal.update({f"{name}_{k}": v for k, v in r.items()})
    log.info("open set: idle below %.5f, unknown below %.3f; %s", idle_floor, unknown_below,
             ", ".join(f"{k}={v:.3f}" for k, v in cal.items() if isinstance(v, float)))
    return with_hold(replace(rule, calibration=cal), hold)


def with_hold(rule: OpenSet, hold: float | None) -> OpenSet:
    """``rule`` whose held classes continue down to ``hold`` times its unknown threshold
    (``OpenSet.hold_below``; None or 1: no hold)."""
    if hold is not None and not (0.0 <= hold <= 1.0):
        raise FinetecError(f"the hold factor must be in [0, 1], got {hold}")
    below = None if hold is None or hold >= 1.0 else hold * rule.unknown_below
    return replace(rule, hold_below=below, calibration={**rule.calibration, "hold": hold})


def with_prototypes(recognizer, rule: OpenSet, taught: WindowSet, outliers: WindowSet | None,
                    inliers: WindowSet | None = None, outlier_rejection: float = 0.85,
                    max_inlier_rejection: float = 0.10,
                    grid: tuple = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98),
                    per_window: int = 0, seed: int = 0) -> OpenSet:
    """``rule`` with class prototypes (the mean feature directions of the ``taught``
    windows, by class; with ``per_window`` N > 0, instead the unit features of up to N of
    the moving ``taught`` windows themselves, drawn at random with ``seed``: a memory whose
    nearest row is a window's nearest training window) and a similarity floor under which a
    moving window is ``unknown``:
    the level that rejects ``outlier_rejection`` of the moving ``outliers`` windows,
    lowered when it would reject more than ``max_inlier_rejection`` of the moving
    ``inliers`` windows (held-out windows of the classes). Without ``outliers``, the floor
    keeps ``1 - max_inlier_rejection`` of the ``inliers`` (or else ``taught``) windows.
    The calibration record gets the rule, the rates it gives and the floors of the
    other rejection shares in ``grid``."""
    _, m_taught, f_taught = outputs(recognizer, taught)
    if f_taught is None:
        raise ValueError("this model gives no features; prototypes need a FinetecNet")
    if per_window > 0:
        if inliers is None:
            raise ValueError("a memory of training windows needs held-out inliers to set "
                             "its floor on (each training window is its own nearest)")
        f = f_taught[m_taught.max(1) > rule.idle_floor]
        if not len(f):
            raise ValueError("no moving training windows to make the memory from")
        pick = np.random.default_rng(seed).permutation(len(f))[:per_window]
        f = f[np.sort(pick)]
        protos = (f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
    else:
        protos = prototypes(f_taught, taught.labels, len(recognizer.class_names))
    probe = replace(rule, prototypes=protos, similar_below=0.0)

    def moving_similarity(ws: WindowSet) -> np.ndarray:
        _, motion, feats = outputs(recognizer, ws)
        return probe.similarity(feats)[motion.max(1) > rule.idle_floor]

    own = inliers if inliers is not None else taught
    sim_in = moving_similarity(own)
    keep = float(np.quantile(sim_in, max_inlier_rejection)) if len(sim_in) else None
    cal = dict(rule.calibration)
    which = "held-out class" if inliers is not None else "training"
    sim_out = moving_similarity(outliers) if outliers is not None and len(outliers) else []
    if len(sim_out):
        floor = float(np.quantile(sim_out, outlier_rejection))
        cal["outlier_similarity_quantiles"] = {f"{q:g}": float(np.quantile(sim_out, q))
                                               for q in grid}
        how = f"rejects {outlier_rejection:g} of the moving outlier windows"
        if inliers is not None and keep is not None and keep < floor:
            cal["uncapped_similar_below"] = floor
            floor = keep
            how += (f", lowered to keep {1 - max_inlier_rejection:.0%} of the moving "
                    f"{which} windows")
        cal["outlier_unknown_rate"] = float(np.mean(sim_out < floor))
    elif keep is not None:
        floor = keep
        how = f"keeps {1 - max_inlier_rejection:.0%} of the moving {which} windows"
    else:
        raise ValueError("no moving windows to set the similarity floor on")
    nearest = (f"the nearest of {len(protos)} training windows" if per_window > 0
               else "the nearest class prototype")
    cal["unknown_rule"] = f"similarity to {nearest} below the level that " + how
    cal["inlier_unknown_rate"] = float(np.mean(sim_in < floor)) if len(sim_in) else None
    log.info("open set: unknown below similarity %.3f (%s)", floor, how)
    return replace(rule, prototypes=protos, similar_below=floor, calibration=cal)


def rates(recognizer, windows: WindowSet, rule: OpenSet | None = None) -> dict:
    """Shares of ``windows`` that come out right (their class; for windows of no class,
    ``unknown`` or ``idle``), ``unknown`` and ``idle`` under ``rule`` (default: the
    recognizer's)."""
    probs, motion, feats = outputs(recognizer, windows)
    return _rates(recognizer.class_names, windows.labels, probs, motion,
                  rule or recognizer.open_set, feats)


def _rates(class_names, labels: np.ndarray, probs: np.ndarray, motion: np.ndarray,
           rule: OpenSet | None, features: np.ndarray | None = None) -> dict:
    names = np.array([d.label for d in decide(probs, motion, class_names, rule, features)])
    truth = np.array([class_names[k] if k >= 0 else "" for k in labels])
    rejected = (names == UNKNOWN) | (names == IDLE)
    right = np.where(labels >= 0, names == truth, rejected)
    return {"right": float(right.mean()), "unknown": float((names == UNKNOWN).mean()),
            "idle": float((names == IDLE).mean()),
            "closed_right": float(np.mean(probs.argmax(1) == labels))}


def calibration_sets(recognizer, data_root=None, seed: int = 0, still: int = 600):
    """``(inliers, outliers, still)`` for a Penn Action model: the validation clips in both
    joint conventions, the held-out J-HMDB clips of other actions, still windows of
    training poses."""
    from finetec_live.data import load_dataset
    from finetec_live.data.outliers import jhmdb_outliers, split_outliers
    from finetec_live.learning.windows import split_train_val

    T, w = recognizer.T, recognizer.window_seconds
    vis = load_dataset("penn", data_root)
    ann = {c.name: c for c in load_dataset("penn", data_root, mask="annotated").clips}
    train, val = split_train_val(list(vis.train()))
    both = val + [ann[c.name] for c in val]
    held = split_outliers(jhmdb_outliers("train", data_root, recognizer.layout))[1]
    rng = np.random.default_rng(seed)
    return (clip_windows(both, T, w), clip_windows(held, T, w, outlier=True),
            still_windows(train + [ann[c.name] for c in train], still, T, rng, w,
                          layout=recognizer.layout))


def taught_windows(recognizer, data_root=None) -> WindowSet:
    """The windows class prototypes of a Penn Action model are made from: its training
    clips (less the validation carve-out) in both joint conventions, whole and cut."""
    from finetec_live.data import load_dataset
    from finetec_live.learning.windows import split_train_val

    vis = load_dataset("penn", data_root)
    ann = {c.name: c for c in load_dataset("penn", data_root, mask="annotated").clips}
    train, _ = split_train_val(list(vis.train()))
    return clip_windows(train + [ann[c.name] for c in train], recognizer.T,
                        recognizer.window_seconds)


def test_sets(recognizer, data_root=None, seed: int = 1, still: int = 600) -> dict:
    """The report's sets, none seen by training or calibration: Penn's test clips whole
    (both conventions), J-HMDB's test clips of the actions Penn lacks (whole), still
    windows of test poses."""
    from finetec_live.data import load_dataset
    from finetec_live.data.outliers import jhmdb_outliers

    T, w = recognizer.T, recognizer.window_seconds
    vis = list(load_dataset("penn", data_root).test())
    ann = list(load_dataset("penn", data_root, mask="annotated").test())
    rng = np.random.default_rng(seed)
    return {"penn_test_visibility": clip_windows(vis, T, w, crops=False),
            "penn_test_annotated": clip_windows(ann, T, w, crops=False),
            "jhmdb_test_other_actions": clip_windows(
                jhmdb_outliers("test", data_root, recognizer.layout), T, w, crops=False,
                outlier=True),
            "still_test_poses": still_windows(vis + ann, still, T, rng, w,
                                              layout=recognizer.layout)}
