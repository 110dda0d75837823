"""Corrupted test windows and the metrics of the evaluation protocol.

:func:`build_protocol` corrupts every test clip with one protocol of
:data:`finetec_live.data.corruption.EVAL_PROTOCOLS` (one generator per sample from
:func:`~finetec_live.data.corruption.protocol_rng`, so every method sees the same
masks), grouped by window length for batched inference. The metrics: top-1 and
mean-class accuracy, and the completion error on the removed joints that have
ground truth, in body-size units, next to linear interpolation's.
Validation during training (:mod:`finetec_live.learning.validation`) and the evaluation
(:mod:`finetec_live.learning.evaluate`) both build their windows here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from finetec_live.data.corruption import Corruption, protocol_rng
from finetec_live.errors import FinetecError
from finetec_live.inference.preprocess import denormalize, interpolate_missing, normalize, resample

DEFAULT_SEED = 0


def load_test_clips(dataset: str, data_root: str | None = None, limit: int | None = None,
                    joints: str = "visibility"):
    """The official test clips of ``dataset`` (``penn``, ``jhmdb`` or ``pyskl:PATH``), the
    class names and the layout.

    ``limit`` keeps an evenly spaced subset (every class stays represented).
    ``joints`` is Penn Action's joint convention: ``"visibility"`` (occluded joints
    missing, as annotated) or ``"annotated"`` (the annotators' positions of occluded
    joints given as valid, as a pose estimator gives every joint).
    """
    from finetec_live.data import load_dataset

    if joints != "visibility" and not str(dataset).startswith("penn"):
        raise FinetecError(f"--joints {joints} is a Penn Action convention; {dataset} has "
                           "one convention only")
    kw = {"mask": joints} if str(dataset).startswith("penn") else {}
    cs = load_dataset(dataset, data_root, **kw)
    test = list(cs.test().clips)
    if limit is not None and 0 < limit < len(test):
        idx = np.unique(np.linspace(0, len(test) - 1, limit).round().astype(int))
        test = [test[i] for i in idx]
    return test, list(cs.class_names), cs.layout


@dataclass
class Group:
    """Windows of one length, stacked for batched inference.

    ``index (n,)`` sample indices into the protocol's clip list; ``positions
    (n, T, V, 2)`` the corrupted input (zeros wherever a mask is False);
    ``frame_valid (n, T)``, ``joint_valid (n, T, V)``, ``timestamps (n, T)``;
    ``truth (n, T, V, 2)`` the clean positions at the same frames;
    ``missing (n, T, V)`` removed by the protocol and valid in the clean clip
    (where completion is scored); ``scale (n,)`` body size of the clean window.
    """

    index: np.ndarray
    positions: np.ndarray
    frame_valid: np.ndarray
    joint_valid: np.ndarray
    timestamps: np.ndarray
    truth: np.ndarray
    missing: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass
class ProtocolInputs:
    """The corrupted test windows of one protocol, shared by every method."""

    spec: str
    kind: str
    rate: float
    labels: np.ndarray  # (N,)
    groups: list[Group]
    frame_masks: list[np.ndarray]  # (T_i,) bool kept-frame mask of each sample
    mask_digest: str = ""
    missing_fraction: float = 0.0  # mean removed share of the frames
    prepared: dict = field(default_factory=dict)  # cache: (T, layout, fill, kernels) -> batches

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])


def build_protocol(clips: Sequence, spec: str, T: int, layout: str,
                   seed: int = DEFAULT_SEED) -> ProtocolInputs:
    """Corrupt every clip with ``spec`` (same masks for a given seed, whatever the method)."""
    c = Corruption.parse(spec)
    rows: dict[int, list] = {}
    masks, fractions = [], []
    digest = hashlib.sha256()
    for i, clip in enumerate(clips):
        ts0 = clip.timestamps()
        fv0 = np.asarray(clip.frame_valid, dtype=bool)
        if c.on_native_frames:
            pos, jv0 = np.asarray(clip.positions, np.float32), np.asarray(clip.joint_valid, bool)
            ts = ts0
        else:
            pos, fv0, jv0, ts = resample(clip.positions, fv0, clip.joint_valid, ts0, T)
        jv0 = jv0 & fv0[:, None]
        n_t, n_v = jv0.shape
        keep_f, keep_j = c.masks(n_t, n_v, protocol_rng(seed, i, c))
        fv = fv0 & keep_f
        jv = jv0 & keep_j
        x = np.where(jv[..., None], pos, 0.0).astype(np.float32)
        truth = np.where(jv0[..., None], pos, 0.0).astype(np.float32)
        missing = jv0 & ~jv
        _, _, scale = normalize(pos, fv0, jv0, layout)
        masks.append(keep_f)
        fractions.append(1.0 - keep_f.mean())
        digest.update(np.packbits(keep_f).tobytes() + np.packbits(keep_j).tobytes())
        rows.setdefault(n_t, []).append((i, x, fv, jv, ts, truth, missing, float(scale)))
    groups = []
    for n_t in sorted(rows):
        r = rows[n_t]
        groups.append(Group(
            index=np.array([e[0] for e in r], dtype=np.int64),
            positions=np.stack([e[1] for e in r]), frame_valid=np.stack([e[2] for e in r]),
            joint_valid=np.stack([e[3] for e in r]),
            timestamps=np.stack([e[4] for e in r]).astype(np.float64),
            truth=np.stack([e[5] for e in r]), missing=np.stack([e[6] for e in r]),
            scale=np.array([e[7] for e in r], dtype=np.float32)))
    return ProtocolInputs(spec=str(c), kind=c.kind, rate=float(c.rate),
                          labels=np.array([cl.label for cl in clips], dtype=np.int64),
                          groups=groups, frame_masks=masks, mask_digest=digest.hexdigest()[:16],
                          missing_fraction=float(np.mean(fractions)) if fractions else 0.0)


def accuracies(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    """``(top-1, mean-class accuracy)`` over the classes present in ``labels``."""
    pred = probs.argmax(axis=1)
    correct = pred == labels
    top1 = float(correct.mean()) if len(labels) else float("nan")
    per_class = [correct[labels == k].mean() for k in range(num_classes) if np.any(labels == k)]
    return top1, float(np.mean(per_class)) if per_class else float("nan")


def completion_error_sums(completed: np.ndarray, truth: np.ndarray, missing: np.ndarray,
                          scale: np.ndarray) -> tuple[float, int]:
    """Sum of Euclidean errors on ``missing (n, T, V)`` in body-size units, and their count."""
    d = np.sqrt(((completed.astype(np.float64) - truth) ** 2).sum(-1))  # (n, T, V)
    d = d / np.asarray(scale, np.float64)[:, None, None]
    return float(d[missing].sum()), int(missing.sum())


def interpolate_window(positions, frame_valid, joint_valid, layout: str) -> np.ndarray:
    """The linear-interpolation baseline: :func:`interpolate_missing` in body coordinates.

    The observed joints are normalised (:func:`normalize`), interpolated over
    time and mapped back, so a joint never observed in the window sits at the
    body's centre instead of the caller's origin; everywhere else this is
    exactly :func:`interpolate_missing` in the caller's units (normalising is affine).
    """
    xn, centre, scale = normalize(positions, frame_valid, joint_valid, layout)
    jv = np.asarray(joint_valid, bool) & np.asarray(frame_valid, bool)[..., None]
    filled = denormalize(interpolate_missing(xn, frame_valid, jv), centre, scale)
    return np.where(jv[..., None], positions, filled).astype(np.float32)


def interpolation_error(inputs: ProtocolInputs, layout: str) -> tuple[float, int]:
    """Completion error of linear interpolation (:func:`interpolate_window`) on the
    protocol's missing joints."""
    total, count = 0.0, 0
    for g in inputs.groups:
        filled = interpolate_window(g.positions, g.frame_valid, g.joint_valid, layout)
        s, c = completion_error_sums(filled, g.truth, g.missing, g.scale)
        total, count = total + s, count + c
    return (total / count if count else float("nan")), count
