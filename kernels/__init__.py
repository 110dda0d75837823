"""Numba kernels over skeleton windows (installed as ``finetec_live.kernels``).

- :func:`region_motion` / :func:`region_motion_batch`: per-region motion scores
  (temporal variance of each joint over its valid frames, averaged per region,
  divided by the squared body size measured in the window) and the
  dynamic/static split: a region is dynamic when its score is at least
  ``threshold`` (0.25) times the window's largest and above ``floor`` (0.002).
  See :mod:`finetec_live.kernels.motion`.
- :func:`lagrangian_kinematics` / :func:`lagrangian_kinematics_batch`: the
  kinematics of the skeleton tree from windowed quadratic least-squares fits of
  each bone's length and angle (and the root's position) over the nearest valid
  samples in time (at most ``2 * half_window + 1``, within ``max_span``),
  recomposed down the tree with radial, centripetal, tangential and Coriolis
  terms; and the generalised force ``tau`` at each bone's parent joint (inverse
  dynamics of uniform rods, masses 1.0 per bone unless given; positive towards
  increasing bone angle). Nothing is learned. Unsupported entries are 0 and
  flagged in ``acc_valid`` / ``tau_valid``, never NaN. See
  :mod:`finetec_live.kernels.kinematics`.

Inputs: ``positions`` float32 (float64 is converted), ``joint_valid`` bool
(other dtypes are refused: convert explicitly), ``timestamps`` strictly
increasing seconds; wrong shapes or dtypes raise ``ValueError`` naming the
argument, what it got and what it needs.

NumPy twins with the same names and signatures: :mod:`finetec_live.kernels.reference`
(plain loops over frames, obviously correct) and :mod:`finetec_live.kernels.vectorised`
(array operations, the fair speed baseline); ``tools/bench_kernels.py`` times all three.
"""

from ._common import MAX_HALF_WINDOW, MAX_SPAN_LIMIT, KinematicsResult
from .kinematics import (
    DEFAULT_MAX_SPAN,
    lagrangian_kinematics,
    lagrangian_kinematics_batch,
)
from .motion import DEFAULT_FLOOR, DEFAULT_THRESHOLD, region_motion, region_motion_batch

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_MAX_SPAN",
    "DEFAULT_THRESHOLD",
    "MAX_HALF_WINDOW",
    "MAX_SPAN_LIMIT",
    "KinematicsResult",
    "lagrangian_kinematics",
    "lagrangian_kinematics_batch",
    "region_motion",
    "region_motion_batch",
]
