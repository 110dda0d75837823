"""Region motion variance: which body regions move in a window.

Definition (shared with :mod:`finetec_live.kernels.reference`):

1. A joint sample counts when ``joint_valid`` is True and its coordinates are
   finite.
2. Body size ``s``: in every frame with at least two counted joints, the RMS
   distance of those joints to their centroid; ``s`` is the mean over such
   frames. It uses every joint, so it does not vanish when the torso collapses
   in the image (front-view push-ups), and it comes from the window itself, so
   the scores do not depend on the units of ``positions``.
3. Joint motion: the temporal variance of the joint's position over its counted
   frames (population variance, summed over coordinates); only joints with at
   least two counted frames take part.
4. ``scores[r]``: the mean joint motion over the joints of region ``r`` that take
   part, divided by ``s**2``; 0 for a region with no such joint, and all 0 when
   ``s`` is 0.
5. ``dynamic[r] = scores[r] > floor and scores[r] >= threshold * scores.max()``:
   a region is dynamic when it moves at least ``threshold`` times as much as
   the window's most moving region and more than the absolute ``floor`` (a
   still window, keypoint jitter only, has nothing dynamic).

The default ``floor`` (0.002) is an RMS displacement of about 4.5% of the body
size ``s`` (roughly 1.5% of body height); ``threshold`` defaults to 0.25.
"""

from __future__ import annotations

import numpy as np

from ._common import check_fraction, check_mask, check_positions, check_regions
from ._numba import ijit, jit, pjit, prange

DEFAULT_THRESHOLD = 0.25
DEFAULT_FLOOR = 0.002
_SCORE_MAX = 1e30  # scores are clipped here so a degenerate body size cannot give inf


@ijit
def _counted(pos, valid, t, v):
    if not valid[t, v]:
        return False
    for c in range(pos.shape[2]):
        if not np.isfinite(pos[t, v, c]):
            return False
    return True


@ijit
def _sum_sq_dev(x, ok, n):
    """Sum of squared deviations from their mean of the ``n`` entries of ``x`` where ``ok``."""
    m = 0.0
    for i in range(x.shape[0]):
        m += x[i] if ok[i] else 0.0
    m /= n
    ss = 0.0
    for i in range(x.shape[0]):
        d = x[i] - m if ok[i] else 0.0
        ss += d * d
    return ss


@jit
def _region_motion_one(pos, valid, regions, threshold, floor, scores, dynamic):
    """One window: fills ``scores (R,)`` and ``dynamic (R,)`` in place.

    Coordinates are the outer loop so every sum is a scalar accumulator; the
    sums select rather than branch on the mask (unpredictable branches cost more
    than the arithmetic).
    """
    n_t, n_v, n_c = pos.shape
    n_r = scores.shape[0]
    ok = np.empty((n_t, n_v), dtype=np.bool_)
    n_frame = np.zeros(n_t, dtype=np.int64)  # counted joints per frame
    n_joint = np.zeros(n_v, dtype=np.int64)  # counted frames per joint
    for t in range(n_t):
        for v in range(n_v):
            g = _counted(pos, valid, t, v)
            ok[t, v] = g
            n_frame[t] += g
            n_joint[v] += g
    ss_frame = np.zeros(n_t)  # squared distances to the frame's centroid
    ss_joint = np.zeros(n_v)  # squared distances to the joint's temporal mean
    for c in range(n_c):
        for t in range(n_t):
            if n_frame[t] >= 2:
                ss_frame[t] += _sum_sq_dev(pos[t, :, c], ok[t], n_frame[t])
        for v in range(n_v):
            if n_joint[v] >= 2:
                ss_joint[v] += _sum_sq_dev(pos[:, v, c], ok[:, v], n_joint[v])
    # body size: mean over frames of the RMS distance to the centroid
    size_sum = 0.0
    size_n = 0
    for t in range(n_t):
        if n_frame[t] >= 2:
            size_sum += np.sqrt(ss_frame[t] / n_frame[t])
            size_n += 1
    size = size_sum / size_n if size_n > 0 else 0.0
    # per-joint variance, averaged per region
    acc = np.zeros(n_r)
    cnt = np.zeros(n_r, dtype=np.int64)
    for v in range(n_v):
        if n_joint[v] >= 2:
            acc[regions[v]] += ss_joint[v] / n_joint[v]
            cnt[regions[v]] += 1
    best = 0.0
    for r in range(n_r):
        s = 0.0
        if cnt[r] > 0 and size > 0.0:
            s = min(acc[r] / cnt[r] / (size * size), _SCORE_MAX)
        acc[r] = s  # reuse acc as the float64 score
        best = max(best, s)
    for r in range(n_r):
        scores[r] = acc[r]
        dynamic[r] = acc[r] > floor and acc[r] >= threshold * best


@pjit
def _region_motion_many(pos, valid, regions, threshold, floor, scores, dynamic):
    for i in prange(pos.shape[0]):
        _region_motion_one(pos[i], valid[i], regions, threshold, floor, scores[i], dynamic[i])


def _checked(positions, joint_valid, regions, threshold, floor, lead):
    pos = check_positions(positions, lead, None)
    valid = check_mask(joint_valid, pos)
    reg, n_r = check_regions(regions, pos.shape[-2])
    threshold = check_fraction("threshold", threshold, 0.0, 1.0)
    floor = check_fraction("floor", floor, 0.0, np.inf)
    return pos, valid, reg, n_r, threshold, floor


def region_motion(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                  floor=DEFAULT_FLOOR):
    """Per-region motion scores and the dynamic/static split of one window.

    Parameters
    ----------
    positions : ``(T, V, C)`` float32 (float64 is converted).
    joint_valid : ``(T, V)`` bool.
    regions : ``(V,)`` integer region of each joint (0 torso, 1 left arm,
        2 right arm, 3 left leg, 4 right leg; more regions are allowed).
    threshold : fraction of the most moving region's score a region needs to be
        dynamic.
    floor : absolute score a region must exceed to be dynamic.

    Returns
    -------
    scores : ``(R,)`` float32, R = max(5, regions.max() + 1); see the module
        docstring for the exact definition.
    dynamic : ``(R,)`` bool.
    """
    pos, valid, reg, n_r, threshold, floor = _checked(positions, joint_valid, regions,
                                                      threshold, floor, 1)
    scores = np.zeros(n_r, dtype=np.float32)
    dynamic = np.zeros(n_r, dtype=np.bool_)
    _region_motion_one(pos, valid, reg, threshold, floor, scores, dynamic)
    return scores, dynamic


def region_motion_batch(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                        floor=DEFAULT_FLOOR):
    """:func:`region_motion` over ``N`` windows in parallel.

    ``positions (N, T, V, C)``, ``joint_valid (N, T, V)``; returns ``scores (N, R)``
    float32 and ``dynamic (N, R)`` bool.
    """
    pos, valid, reg, n_r, threshold, floor = _checked(positions, joint_valid, regions,
                                                      threshold, floor, 2)
    scores = np.zeros((pos.shape[0], n_r), dtype=np.float32)
    dynamic = np.zeros((pos.shape[0], n_r), dtype=np.bool_)
    _region_motion_many(pos, valid, reg, threshold, floor, scores, dynamic)
    return scores, dynamic
