"""Numba kernels over skeleton windows (installed as ``finetec_live.kernels``).

- :func:`region_motion` / :func:`region_motion_batch`: per-region motion scores
  and the dynamic/static split of a window.
- :func:`lagrangian_acceleration` / :func:`lagrangian_acceleration_batch`:
  joint accelerations from local quadratic fits of bone lengths and angles,
  recomposed down the tree, and the joint torques of inverse dynamics.

Plain NumPy twins with the same names and signatures live in
:mod:`finetec_live.kernels.reference`.
"""

from ._common import LagrangianResult
from .lagrangian import (
    DEFAULT_MAX_SPAN,
    lagrangian_acceleration,
    lagrangian_acceleration_batch,
)
from .motion import DEFAULT_FLOOR, DEFAULT_THRESHOLD, region_motion, region_motion_batch

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_MAX_SPAN",
    "DEFAULT_THRESHOLD",
    "LagrangianResult",
    "lagrangian_acceleration",
    "lagrangian_acceleration_batch",
    "region_motion",
    "region_motion_batch",
]
