"""Training data: validation carve-outs, whole-clip and cropped windows, the completion
prior and prototype windows, long-gap masks, the augmenting :class:`Sampler` and the
completion target. NumPy only; the training loops are in :mod:`finetec_live.learning.train`
and :mod:`finetec_live.learning.refit`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from finetec_live.data.corruption import Corruption, diverse_mask, joint_dropout
from finetec_live.inference.prepare import PreparedBatch, prepare_windows
from finetec_live.inference.preprocess import interpolate_missing, normalize, resample_batch
from finetec_live.learning.estimator import (
    EstimatorNoise,
    estimator_errors,
    estimator_geometry,
    lower_body,
    transplant_lower_body,
)
from finetec_live.skeleton.layouts import get_layout

# The validation split is carved with this seed whatever the training seed, so every run
# (and every choice made on validation) sees the same validation clips.
VAL_SEED = 7
VAL_FRACTION = 0.1


def split_train_val(clips, fraction: float = VAL_FRACTION, seed: int = VAL_SEED):
    """Carve a stratified validation subset out of the training clips: ``round(fraction *
    n)`` clips of each class of ``n`` clips (at least one, and never a class's last clip),
    drawn with ``seed``. Returns ``(train, val)``, each in the clips' order."""
    clips = list(clips)
    if fraction <= 0:
        return clips, []
    rng = np.random.default_rng(seed)
    labels = np.array([c.label for c in clips])
    val_idx = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val_idx += list(rng.choice(idx, size=n, replace=False))
    val = set(int(i) for i in val_idx)
    return [c for i, c in enumerate(clips) if i not in val], [clips[i] for i in sorted(val)]


def clip_scale(clip, layout) -> float:
    _, _, s = normalize(clip.positions, np.ones(clip.num_frames, bool), clip.joint_valid, layout)
    return float(s)


def whole_windows(clips, T: int):
    """Every clip resampled whole to ``T`` frames, all frames valid: ``(N, T, V, 2)`` etc."""
    out = [resample_batch(c.positions[None], np.ones((1, c.num_frames), bool),
                          c.joint_valid[None], np.arange(c.num_frames)[None] / c.fps, T)
           for c in clips]
    pos = np.concatenate([o[0] for o in out])
    fv = np.concatenate([o[1] for o in out])
    jv = np.concatenate([o[2] for o in out])
    ts = np.concatenate([o[3] for o in out])
    return pos, fv, jv, ts


def mean_sequence(clips, T: int, layout) -> np.ndarray:
    """The prior for completion: the mean normalised, gap-filled training sequence ``(T, V, 2)``."""
    pos, fv, jv, _ = whole_windows(clips, T)
    xn, _, _ = normalize(pos, fv, jv, layout)
    return interpolate_missing(xn, fv, jv).mean(axis=0).astype(np.float32)


def prototype_windows(clips, T: int, layout, rng: np.random.Generator, crops_per_clip: int,
                      crop_seconds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Windows the completion's centroid bank is drawn from: every clip whole and up to
    ``crops_per_clip`` crops of live-window durations (none when the clip is no longer
    than the crop), normalised, gaps interpolated, each also mirrored left-right.

    Returns ``(windows (M, T, V, 2), clip_index (M,))``, the index into ``clips`` each
    window came from.
    """
    lay = get_layout(layout)
    parts = [whole_windows(clips, T)[:3]]
    ids = [np.arange(len(clips))]
    for i, c in enumerate(clips):
        for _ in range(crops_per_clip):
            n = int(np.clip(round(rng.uniform(*crop_seconds) * c.fps), 8, c.num_frames))
            if n >= c.num_frames:
                continue  # the whole clip again
            s = int(rng.integers(0, c.num_frames - n + 1))
            parts.append(resample_batch(c.positions[None, s:s + n], np.ones((1, n), bool),
                                        c.joint_valid[None, s:s + n],
                                        np.arange(n)[None] / c.fps, T)[:3])
            ids.append(np.array([i]))
    pos, fv, jv = (np.concatenate([p[i] for p in parts]) for i in range(3))
    xn, _, _ = normalize(pos, fv, jv, lay)
    w = interpolate_missing(xn, fv, jv & fv[..., None])  # (M, T, V, 2)
    mirrored = w[:, :, lay.flip_permutation()] * np.array([-1.0, 1.0], np.float32)
    ids = np.concatenate(ids)
    return np.concatenate([w, mirrored]).astype(np.float32), np.concatenate([ids, ids])


def initial_prototypes(windows: np.ndarray, clip_index: np.ndarray, size: int, seed: int,
                       min_clips: int = 3) -> np.ndarray:
    """``size`` k-means centroids ``(size, T, V, 2)`` of ``windows`` (scipy's kmeans2), each
    an average over at least ``min_clips`` different clips.

    A cluster drawn from fewer clips (a singleton, an empty cluster left at its starting
    window, the windows of one clip) would put a training sequence itself in the bank; it
    is replaced by the mean of the nearest windows of ``min_clips`` different clips.
    """
    from scipy.cluster.vq import kmeans2

    flat = windows.reshape(len(windows), -1).astype(np.float64)
    clip_index = np.asarray(clip_index)
    size = min(size, len(flat))
    with warnings.catch_warnings():  # empty clusters are handled below
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(flat, size, iter=30, minit="points", seed=seed)
    for k in range(size):
        if len(np.unique(clip_index[labels == k])) >= min_clips:
            continue
        order = np.argsort(((flat - centroids[k]) ** 2).sum(1))
        _, first = np.unique(clip_index[order], return_index=True)  # each clip's nearest
        chosen = order[np.sort(first)[:min_clips]]
        centroids[k] = flat[chosen].mean(0)
    return centroids.reshape(-1, *windows.shape[1:]).astype(np.float32)


GAP_KINDS = ("burst", "burst", "prefix", "tail", "middle")


def long_gap_mask(T: int, V: int, rng: np.random.Generator, min_rate: float = 0.3,
                  max_rate: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A mask with long contiguous gaps, where completion has to beat interpolation:
    1-4 bursts (twice as likely as each other kind), a missing prefix, tail or middle, at a
    rate uniform in [min_rate, max_rate], plus joint dropout up to 15 %. Returns
    ``(frame_valid (T,), joint_valid (T, V))`` like :func:`diverse_mask`."""
    kind = GAP_KINDS[int(rng.integers(len(GAP_KINDS)))]
    runs = int(rng.integers(1, 5)) if kind == "burst" else 1
    frames = Corruption(kind, float(rng.uniform(min_rate, max_rate)), runs).frame_mask(T, rng)
    joints = joint_dropout(T, V, float(rng.uniform(0.0, 0.15)), rng) & frames[:, None]
    return frames, joints


@dataclass
class TrainingBatch:
    """Augmented, corrupted training windows on the model's grid, ``B`` of them.

    ``positions (B, T, V, 2)`` with keypoint jitter, valid where ``frame_valid (B, T)``
    and ``joint_valid (B, T, V)`` (after frames dropped at the native rate and joints
    dropped by augmentation); ``observed_frames``/``observed_joints`` what the model
    sees after the window's temporal mask; ``timestamps (B, T)``; ``labels (B,)``;
    ``clean (B, T, V, 2)`` the same augmented windows without jitter, resampled from
    every native frame, valid where ``clean_valid (B, T, V)`` (the clip has the joint),
    the completion's ground truth.
    """

    positions: np.ndarray
    frame_valid: np.ndarray
    joint_valid: np.ndarray
    timestamps: np.ndarray
    observed_frames: np.ndarray
    observed_joints: np.ndarray
    labels: np.ndarray
    clean: np.ndarray
    clean_valid: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def observed_positions(self) -> np.ndarray:
        """``positions`` with zeros wherever the model does not see the joint."""
        seen = self.observed_frames[..., None] & self.observed_joints
        return np.where(seen[..., None], self.positions, 0.0).astype(np.float32)


class Sampler:
    """Draws augmented, corrupted training windows (NumPy; seeded).

    ``hidden``: per clip, ``(T, V)`` joints the clip's ``joint_valid`` leaves out although
    their positions are annotated (Penn's self-occluded joints); with ``reveal_prob`` a
    window shows them, as a pose estimator gives every joint. ``tempo_prob``: share of
    windows played faster or slower (a factor in ``tempo``). ``estimator_prob``: share of
    windows that get :mod:`~finetec_live.learning.estimator`'s placement, view and
    estimator errors (``noise``). ``transplant_prob``: share of the windows of clips
    missing most of their lower body that get a donor clip's hips and legs
    (:func:`~finetec_live.learning.estimator.transplant_lower_body`).
    """

    def __init__(self, clips, layout, T: int, rng: np.random.Generator, *,
                 crop_prob: float, crop_seconds: tuple[float, float], mask_prob: float,
                 native_prob: float, augment: bool = True, gap_prob: float = 0.0,
                 hidden=None, reveal_prob: float = 0.0, tempo_prob: float = 0.0,
                 tempo: tuple[float, float] = (0.7, 1.4), estimator_prob: float = 0.0,
                 noise: EstimatorNoise | None = None, transplant_prob: float = 0.0) -> None:
        self.clips = clips
        self.gap_prob = gap_prob  # share of the masks drawn as long contiguous gaps
        self.layout = get_layout(layout)
        self.T = T
        self.rng = rng
        self.crop_prob = crop_prob
        self.crop_seconds = crop_seconds
        self.mask_prob = mask_prob
        self.native_prob = native_prob
        self.augment = augment
        self.hidden = hidden
        self.reveal_prob = reveal_prob
        self.tempo_prob = tempo_prob
        self.tempo = tempo
        self.estimator_prob = estimator_prob
        self.noise = noise or EstimatorNoise()
        self.transplant_prob = transplant_prob
        low = lower_body(self.layout)
        seen = np.array([c.joint_valid[:, low].mean() for c in clips])
        self.legless = seen < 0.5  # clips missing most of their lower body
        self.donors = np.flatnonzero(seen >= 0.9)
        self.flip = self.layout.flip_permutation()
        self.scales = np.array([clip_scale(c, self.layout) for c in clips], dtype=np.float32)

    def _augment(self, pos, jv, i: int):
        """Spatial augmentation about the clip's centre: ``(clean, jittered, joints,
        clean_joints)``; ``clean_joints`` before the augmentation drops any."""
        rng = self.rng
        ctr = pos[jv].mean(0) if jv.any() else np.zeros(2, np.float32)
        ang = rng.uniform(-0.3, 0.3)
        sh = rng.uniform(-0.2, 0.2)
        sx, sy = rng.uniform(0.8, 1.2, size=2)
        R = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        M = R @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])
        if rng.random() < 0.5:
            M = M @ np.diag([-1.0, 1.0])
            pos, jv = pos[:, self.flip], jv[:, self.flip]
        estimated = rng.random() < self.estimator_prob
        if estimated:
            pos, jv = estimator_geometry(pos, jv, self.layout, rng, self.noise)
        clean = ((pos - ctr) @ M.T.astype(np.float32) + ctr).astype(np.float32)
        # keypoint jitter (pose-estimator noise), in units of the body size
        sig = rng.uniform(0.0, 0.04) * self.scales[i]
        noisy = clean + rng.normal(0, 1, size=clean.shape).astype(np.float32) * sig
        clean_jv = jv
        if estimated:
            noisy, jv = estimator_errors(noisy, jv, self.layout, rng, self.noise)
        # missing joints (whole tracks and single samples)
        if rng.random() < 0.3:
            jv = jv & (rng.random(jv.shape) > rng.uniform(0.0, 0.15))
        if rng.random() < 0.1:
            jv = jv.copy()
            jv[:, rng.integers(jv.shape[1])] = False
        return clean, noisy, jv, clean_jv

    def _one(self, i: int):
        rng, c = self.rng, self.clips[i]
        pos = c.positions.copy()  # (Tc, V, 2)
        jv = c.joint_valid.copy()
        if self.augment and self.hidden is not None and rng.random() < self.reveal_prob:
            jv |= self.hidden[i]
        if (self.augment and self.legless[i] and len(self.donors)
                and rng.random() < self.transplant_prob):
            d = self.clips[int(self.donors[rng.integers(len(self.donors))])]
            pos, jv = transplant_lower_body(pos, jv, d.positions, d.joint_valid, self.layout)
        Tc = c.num_frames
        speed = 1.0
        if self.augment and rng.random() < self.tempo_prob:
            speed = math.exp(rng.uniform(math.log(self.tempo[0]), math.log(self.tempo[1])))
        ts = np.arange(Tc) / (c.fps * speed)
        # temporal crop to a live-window duration (of the played-back time)
        if (self.augment and ts[-1] > self.crop_seconds[0]
                and rng.random() < self.crop_prob):
            dur = rng.uniform(*self.crop_seconds)
            n = int(np.clip(round(dur * c.fps * speed), 8, Tc))
            s = int(rng.integers(0, Tc - n + 1))
            pos, jv, ts = pos[s:s + n], jv[s:s + n], ts[s:s + n]
        Tn = len(pos)
        fv = np.ones(Tn, dtype=bool)
        clean, clean_jv = pos, jv
        if self.augment:
            clean, pos, jv, clean_jv = self._augment(pos, jv, i)
            # frames dropped at the native rate, before resampling
            if rng.random() < self.native_prob and Tn > 4:
                keep = rng.random(Tn) > rng.uniform(0.0, 0.6)
                keep[rng.integers(Tn)] = True
                fv = keep
        p, f, j, t = resample_batch(pos[None], fv[None], jv[None], ts[None], self.T)
        # the ground truth from every native frame (dropped ones too), on the same grid
        pc, _, jc, _ = resample_batch(clean[None], np.ones((1, Tn), bool), clean_jv[None],
                                      ts[None], self.T)
        return p[0], f[0], j[0], t[0], c.label, pc[0], jc[0]

    def batch(self, idx) -> TrainingBatch:
        items = [self._one(int(i)) for i in idx]
        pos, fv, jv, ts, _, clean, clean_jv = (np.stack([it[k] for it in items])
                                               for k in (0, 1, 2, 3, 4, 5, 6))
        labels = np.array([it[4] for it in items], dtype=np.int64)
        # diverse temporal masking of the model's window
        ofv, ojv = fv.copy(), jv.copy()
        if self.augment:
            V = jv.shape[2]
            for b in range(len(idx)):
                if self.rng.random() < self.mask_prob:
                    if self.gap_prob > 0 and self.rng.random() < self.gap_prob:
                        f_m, j_m = long_gap_mask(self.T, V, self.rng)
                    else:
                        f_m, j_m = diverse_mask(self.T, V, self.rng, max_rate=0.85,
                                                max_joint_rate=0.15)
                    ofv[b] &= f_m
                    ojv[b] &= j_m
        # at least one observed frame per window
        none = ~ofv.any(1)
        ofv[none, 0] = fv[none, 0]
        ojv[none, 0] = jv[none, 0]
        return TrainingBatch(pos, fv, jv, ts, ofv, ojv, labels, clean, clean_jv)


def join_batches(a: TrainingBatch, b: TrainingBatch) -> TrainingBatch:
    """The windows of ``a`` then those of ``b``, one batch."""
    from dataclasses import fields

    return TrainingBatch(**{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)])
                            for f in fields(TrainingBatch)})


def completion_target(clean: np.ndarray, clean_valid: np.ndarray, batch: PreparedBatch
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The completion's ground truth in the frame of the observed windows: ``clean (B, T, V,
    2)`` normalised by ``batch``'s centre and scale (what the network completes in), zeros
    where ``clean_valid (B, T, V)`` is False. Returns ``(target, valid)`` float32."""
    target = (clean - batch.centre[:, None, None, :]) / batch.scale[:, None, None, None]
    valid = np.asarray(clean_valid, bool)
    return (np.where(valid[..., None], target, 0.0).astype(np.float32),
            valid.astype(np.float32))


def make_batch(model_cfg, layout, tb: TrainingBatch, completion_only: bool = False):
    """Prepare the observed windows of ``tb`` (:func:`prepare_windows`, as live inference
    does) and their completion target: ``(batch, target, target_valid)``.

    ``completion_only``: zeros for the gaps and no kernels, what the completion module alone
    takes (the completion refit)."""
    batch = prepare_windows(tb.observed_positions(), tb.observed_frames, tb.observed_joints,
                            tb.timestamps, T=model_cfg.T, layout=layout,
                            fill="zeros" if completion_only else model_cfg.fill,
                            kernels=False if completion_only else model_cfg.needs_kernels,
                            interp=model_cfg.interp)
    target, valid = completion_target(tb.clean, tb.clean_valid, batch)
    return batch, target, valid
