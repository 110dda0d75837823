"""What a pose estimator does to a skeleton that annotators did not: training-time
corruptions that bridge annotated clips (Penn Action) and poses from MediaPipe.

Every function takes one clip's window, ``positions (T, V, 2)`` and ``joint_valid (T, V)``,
returns new arrays (never changes its arguments) and draws from the given
:class:`numpy.random.Generator`. :func:`estimator_geometry` (a different body or view: the
completion's ground truth gets it too) and :func:`estimator_errors` (mistakes: the observed
window only) apply them, each with its own probability (:class:`EstimatorNoise`); the
:class:`~finetec_live.learning.windows.Sampler` calls them and
:func:`transplant_lower_body`.

- *Joint convention*: annotators mark self-occluded joints invisible although they place
  them; an estimator gives every joint. :class:`~finetec_live.learning.windows.Sampler`
  reveals the annotated positions of such joints at random (``reveal_prob``).
- *Limb swaps*: left and right of an arm or a leg exchanged for a few frames.
- *Lagging tracks*: the estimator's temporal smoothing, a joint group trailing behind.
- *Depth-ambiguous limbs*: a limb foreshortened towards its root for a stretch, as when it
  points at the camera.
- *Partial bodies*: legs (or feet) out of the frame for the whole window, or every joint
  below a horizontal line missing.
- *Camera yaw*: the body seen from the side compresses horizontally.
- *Legs an estimator sees*: annotators leave out joints outside the image (a guitarist's
  legs below the frame), where an estimator often still places them; a clip missing most
  of its lower body gets a donor clip's hips and legs, scaled and anchored at its
  shoulders (:func:`transplant_lower_body`).
- *Landmark placement*: hips spread or pinched about their midpoint and the head moved
  along the neck, the residual differences between where an estimator and annotators
  put these points (see ``tools/check_mapping.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finetec_live.skeleton.layouts import Layout


@dataclass(frozen=True)
class EstimatorNoise:
    """Probabilities (per window) and ranges of :func:`estimator_like`'s corruptions."""

    swap_prob: float = 0.15
    lag_prob: float = 0.3
    foreshorten_prob: float = 0.2
    legs_out_prob: float = 0.08
    feet_out_prob: float = 0.06
    cut_below_prob: float = 0.06
    yaw_prob: float = 0.3
    placement_prob: float = 0.5
    lag_alpha: tuple[float, float] = (0.35, 0.9)
    yaw_scale: tuple[float, float] = (0.45, 1.0)
    hip_spread: tuple[float, float] = (0.75, 1.25)
    head_shift: tuple[float, float] = (0.8, 1.2)


def _names(lay: Layout) -> dict[str, int]:
    return {n: i for i, n in enumerate(lay.joints)}


def limb_groups(lay: Layout) -> dict[str, list[int]]:
    """Joint indices of each limb (``left_arm``...), root first, from the layout's regions
    (1 left arm, 2 right arm, 3 left leg, 4 right leg), ordered by tree depth."""
    regions, depth = lay.regions_array(), lay.depths()
    out = {}
    for name, r in (("left_arm", 1), ("right_arm", 2), ("left_leg", 3), ("right_leg", 4)):
        idx = np.flatnonzero(regions == r)
        out[name] = [int(i) for i in idx[np.argsort(depth[idx], kind="stable")]]
    return out


def _run(T: int, rng: np.random.Generator, lo: int, hi: int) -> slice:
    n = int(rng.integers(lo, min(hi, T) + 1)) if T > lo else T
    s = int(rng.integers(0, T - n + 1))
    return slice(s, s + n)


def swap_limbs(pos, jv, lay: Layout, rng: np.random.Generator, max_frames: int = 12):
    """Left and right of one arm or leg pair exchanged over a run of 2..``max_frames``."""
    groups = limb_groups(lay)
    a, b = (groups["left_arm"], groups["right_arm"]) if rng.random() < 0.5 else \
        (groups["left_leg"], groups["right_leg"])
    pos, jv = pos.copy(), jv.copy()
    if len(a) != len(b) or not a:
        return pos, jv
    run = _run(len(pos), rng, 2, max_frames)
    pos[run, a + b] = pos[run, b + a]
    jv[run, a + b] = jv[run, b + a]
    return pos, jv


def lag(pos, jv, rng: np.random.Generator, alpha: float, joints=None):
    """Exponential smoothing along time (``alpha`` the weight of the newest frame) of
    ``joints`` (default all), over the frames where each joint is valid."""
    pos = pos.copy()
    joints = range(pos.shape[1]) if joints is None else joints
    for v in joints:
        prev = None
        for t in range(len(pos)):
            if not jv[t, v]:
                prev = None
                continue
            prev = pos[t, v] if prev is None else alpha * pos[t, v] + (1 - alpha) * prev
            pos[t, v] = prev
    return pos, jv.copy()


def foreshorten(pos, jv, lay: Layout, rng: np.random.Generator, factor: float):
    """One limb's joints drawn towards its root (its parent in the tree) by ``factor`` over
    a run of frames, as a limb pointing at the camera looks."""
    groups = list(limb_groups(lay).values())
    limb = groups[int(rng.integers(len(groups)))]
    if not limb:
        return pos.copy(), jv.copy()
    root = int(lay.parents_array()[limb[0]])
    pos = pos.copy()
    run = _run(len(pos), rng, 4, len(pos))
    if root >= 0:
        anchor = pos[run, root][:, None, :]
        pos[run, limb] = anchor + factor * (pos[run, limb] - anchor)
    return pos, jv.copy()


def out_of_frame(pos, jv, lay: Layout, rng: np.random.Generator, kind: str):
    """Joints an estimator cannot see: ``"legs"`` (knees and ankles), ``"feet"`` (the
    joints ending each leg) or ``"below"`` (every joint below a random line between the
    median height of the valid joints and the lowest one) missing for the whole window."""
    groups = limb_groups(lay)
    jv = jv.copy()
    if kind == "legs":
        for g in ("left_leg", "right_leg"):
            jv[:, groups[g]] = False
    elif kind == "feet":
        for g in ("left_leg", "right_leg"):
            jv[:, groups[g][-1:]] = False
    elif jv.any():
        ys = pos[..., 1][jv]
        line = rng.uniform(float(np.median(ys)), float(ys.max()))
        jv &= ~(pos[..., 1] > line)
    return pos.copy(), jv


def placement(pos, jv, lay: Layout, rng: np.random.Generator, hip_spread: float,
              head_shift: float):
    """Hips spread about their midpoint by ``hip_spread``; the head moved along the line
    from the shoulders' midpoint by ``head_shift`` (frames where the joints are valid)."""
    n = _names(lay)
    pos = pos.copy()
    if {"left_hip", "right_hip"} <= n.keys():
        lh, rh = n["left_hip"], n["right_hip"]
        ok = jv[:, lh] & jv[:, rh]
        mid = (pos[ok, lh] + pos[ok, rh]) / 2
        pos[ok, lh] = mid + hip_spread * (pos[ok, lh] - mid)
        pos[ok, rh] = mid + hip_spread * (pos[ok, rh] - mid)
    head = n.get("head", n.get("face"))
    if head is not None and {"left_shoulder", "right_shoulder"} <= n.keys():
        ls, rs = n["left_shoulder"], n["right_shoulder"]
        ok = jv[:, head] & jv[:, ls] & jv[:, rs]
        mid = (pos[ok, ls] + pos[ok, rs]) / 2
        pos[ok, head] = mid + head_shift * (pos[ok, head] - mid)
    return pos, jv.copy()


def yaw(pos, jv, rng: np.random.Generator, scale: float):
    """Horizontal compression about the window's centre (a turned body or camera)."""
    ok = jv.any(-1)
    if not ok.any():
        return pos.copy(), jv.copy()
    cx = float(pos[jv][:, 0].mean())
    out = pos.copy()
    out[..., 0] = cx + scale * (pos[..., 0] - cx)
    return out, jv.copy()


LOWER_BODY = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def lower_body(lay: Layout) -> list[int]:
    """Indices of the hips, knees and ankles of ``lay`` (those it has)."""
    n = _names(lay)
    return [n[j] for j in LOWER_BODY if j in n]


def _upper_scale(pos, jv, lay: Layout) -> float:
    """Median shoulder-elbow length over the valid samples (0 when there are none)."""
    n = _names(lay)
    lengths = []
    for side in ("left", "right"):
        s, e = n.get(f"{side}_shoulder"), n.get(f"{side}_elbow")
        if s is None or e is None:
            continue
        ok = jv[:, s] & jv[:, e]
        lengths.append(np.linalg.norm(pos[ok, s] - pos[ok, e], axis=-1))
    both = np.concatenate(lengths) if lengths else np.zeros(0)
    return float(np.median(both)) if both.size else 0.0


def _anchor(pos, jv, lay: Layout):
    """Per frame: the midpoint of the valid shoulders, whether there is one, and the
    direction (radians) from the head to it (NaN without a head)."""
    n = _names(lay)
    sh = [n["left_shoulder"], n["right_shoulder"]]
    w = jv[:, sh].astype(np.float32)  # (T, 2)
    count = w.sum(1)
    mid = (pos[:, sh] * w[..., None]).sum(1) / np.maximum(count, 1)[:, None]
    head = n.get("head", n.get("face"))
    d = mid - pos[:, head] if head is not None else np.full_like(mid, np.nan)
    ok_head = jv[:, head] if head is not None else np.zeros(len(pos), bool)
    angle = np.where(ok_head & (count > 0), np.arctan2(d[:, 1], d[:, 0]), np.nan)
    return mid, count > 0, angle


def transplant_lower_body(pos, jv, donor_pos, donor_jv, lay: Layout):
    """The missing hips, knees and ankles of ``pos`` filled from a donor sequence (looped
    to this length): the donor's lower body relative to its shoulders, scaled by the ratio
    of the two bodies' upper-arm lengths, turned by the difference of their head-to-
    shoulders directions (a lying body gets lying legs), placed at this body's shoulders.
    Frames without a shoulder in either body, and the whole window when either body has no
    upper arm to measure, are left as they are."""
    pos, jv = np.array(pos, np.float32), np.array(jv, bool)
    a, b = _upper_scale(pos, jv, lay), _upper_scale(donor_pos, donor_jv, lay)
    if a <= 0 or b <= 0:
        return pos, jv
    idx = np.arange(len(pos)) % len(donor_pos)
    dp, dj = donor_pos[idx], donor_jv[idx]
    d_mid, d_ok, d_ang = _anchor(dp, dj, lay)
    r_mid, r_ok, r_ang = _anchor(pos, jv, lay)
    turn = np.nan_to_num(r_ang - d_ang)  # no head in either: no turn
    c, s = np.cos(turn), np.sin(turn)
    for v in lower_body(lay):
        fill = ~jv[:, v] & dj[:, v] & d_ok & r_ok
        off = (a / b) * (dp[fill, v] - d_mid[fill])
        cf, sf = c[fill], s[fill]
        turned = np.stack([cf * off[:, 0] - sf * off[:, 1], sf * off[:, 0] + cf * off[:, 1]], -1)
        pos[fill, v] = r_mid[fill] + turned
        jv[fill, v] = True
    return pos, jv


def estimator_geometry(pos, jv, lay: Layout, rng: np.random.Generator,
                       noise: EstimatorNoise | None = None):
    """Where the body's points are and how it is seen (landmark placement, camera yaw),
    each with its probability in ``noise``: a different body, so the completion's ground
    truth gets it too. Returns ``(positions, joint_valid)`` (float32, bool)."""
    noise = noise or EstimatorNoise()
    pos = np.asarray(pos, np.float32)
    jv = np.asarray(jv, bool)
    if rng.random() < noise.placement_prob:
        pos, jv = placement(pos, jv, lay, rng, rng.uniform(*noise.hip_spread),
                            rng.uniform(*noise.head_shift))
    if rng.random() < noise.yaw_prob:
        pos, jv = yaw(pos, jv, rng, rng.uniform(*noise.yaw_scale))
    return pos.astype(np.float32), jv


def estimator_errors(pos, jv, lay: Layout, rng: np.random.Generator,
                     noise: EstimatorNoise | None = None):
    """An estimator's mistakes (foreshortened and swapped limbs, lagging tracks, joints out
    of the frame), each with its probability in ``noise``: the observation only. Returns
    ``(positions, joint_valid)`` (float32, bool); missing joints keep their (unused)
    positions."""
    noise = noise or EstimatorNoise()
    pos = np.asarray(pos, np.float32)
    jv = np.asarray(jv, bool)
    if rng.random() < noise.foreshorten_prob:
        pos, jv = foreshorten(pos, jv, lay, rng, rng.uniform(0.4, 0.9))
    if rng.random() < noise.swap_prob:
        pos, jv = swap_limbs(pos, jv, lay, rng)
    if rng.random() < noise.lag_prob:
        groups = list(limb_groups(lay).values())
        joints = None if rng.random() < 0.5 else groups[int(rng.integers(len(groups)))]
        pos, jv = lag(pos, jv, rng, rng.uniform(*noise.lag_alpha), joints)
    u = rng.random()
    if u < noise.legs_out_prob:
        pos, jv = out_of_frame(pos, jv, lay, rng, "legs")
    elif u < noise.legs_out_prob + noise.feet_out_prob:
        pos, jv = out_of_frame(pos, jv, lay, rng, "feet")
    elif u < noise.legs_out_prob + noise.feet_out_prob + noise.cut_below_prob:
        pos, jv = out_of_frame(pos, jv, lay, rng, "below")
    return pos.astype(np.float32), jv
