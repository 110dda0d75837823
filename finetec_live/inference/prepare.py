"""The one preprocessing path from windows to network inputs (NumPy + Numba, no torch).

:func:`prepare_windows` is used by live inference, evaluation and training alike:
resample each window to the model's ``T`` by time, normalise it (units cancel),
fill the gaps the way the method expects, and run the kernels the model uses
(:class:`KernelOptions`: region motion for the decomposition, Lagrangian
kinematics and generalised forces for the physics). The result is a
:class:`PreparedBatch`.

Units of the kinematics. The kernel runs on the model's time grid, one time
unit per grid step, so its accelerations are in body units per grid step²,
like the network's finite differences. Gravity is in the same units:
``G_BODY * dt**2`` with ``dt`` the window's own grid step in seconds
(``window duration / (T - 1)``; :func:`window_gravity`). The shipped models
were trained with :data:`KERNEL_GRAVITY` for every window, which assumes
``dt = 1/30`` s (a 2.5 s window on 64 steps has ``dt = 0.04`` s: gravity 1.4x
too weak); the correct gravity changes no figure on the Penn Action test
split and moves J-HMDB's by a clip or two (docs/MODEL_CARD.md).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.inference.preprocess import body_measures, resample_batch
from finetec_live.kernels.interpolation import fill_gaps_batch
from finetec_live.kernels.normalisation import normalise_batch
from finetec_live.skeleton.layouts import get_layout

MIN_FRAMES = 8
# Gravity in body units per s^2 (image y down; a body unit is about an upper arm, ~0.3 m).
G_BODY = 9.81 / 0.3
# The constant the shipped checkpoints were trained with (recorded in their normalization
# metadata), right only for a grid step of 1/30 s: 9.81 / 0.3 / 30^2 body units per step^2.
KERNEL_GRAVITY = (0.0, G_BODY / 900.0)
KIN_CLIP = 2.0
# Kinematics fits on the model's grid, in grid steps: at most 2*3+1 samples, none
# further than 6 steps from the step being fitted (longer gaps stay unfitted).
KERNEL_HALF_WINDOW = 3
KERNEL_MAX_SPAN = 6.0
SERIAL_KERNELS_UP_TO = 8


@dataclass(frozen=True)
class KernelOptions:
    """Which kernels :func:`prepare_windows` runs (``ModelConfig.needs_kernels`` builds it).

    ``motion``: region motion, for the ``dynamic`` input of the decomposition.
    ``physics``: Lagrangian kinematics and generalised forces, for ``kin``.
    """

    motion: bool = True
    physics: bool = True


def window_gravity(timestamps: np.ndarray) -> np.ndarray:
    """Gravity ``(N, 2)`` for the kinematics kernel, in body units per grid step².

    ``timestamps (N, T)``: the model's grid in seconds; ``G_BODY * dt**2`` (image y
    down) with ``dt = (t_last - t_first) / (T - 1)`` each window's own step.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    N, T = ts.shape
    g = np.zeros((N, 2))
    if T > 1:
        g[:, 1] = G_BODY * ((ts[:, -1] - ts[:, 0]) / (T - 1)) ** 2
    return g


@dataclass
class PreparedBatch:
    """Windows ready for the network (NumPy), plus what is needed to map results back.

    Shapes: ``x``/``interp (N, T, V, 2)``, ``mask (N, T, V)``, ``dynamic (N, V)``,
    ``kin (N, T, V, 4)``, ``frame_valid (N, T)``, ``timestamps (N, T)`` (the
    model's time grid, seconds), ``centre (N, 2)``, ``scale (N,)``.
    """

    x: np.ndarray
    mask: np.ndarray
    interp: np.ndarray
    dynamic: np.ndarray
    kin: np.ndarray
    frame_valid: np.ndarray
    timestamps: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    motion: np.ndarray | None = None  # (N, R) region motion scores, when the kernel ran
    features: np.ndarray | None = None  # (N, C) the network's pooled features, once predicted

    def __post_init__(self) -> None:
        N, T, V, C = self.x.shape
        want = {"mask": (N, T, V), "interp": (N, T, V, C), "dynamic": (N, V),
                "kin": (N, T, V, 4), "frame_valid": (N, T), "timestamps": (N, T),
                "centre": (N, C), "scale": (N,)}
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(f"PreparedBatch.{name} has shape {got}, expected {shape}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def network_inputs(self) -> tuple[np.ndarray, ...]:
        """``(x, mask, interp, dynamic, kin)`` in the order of ``FinetecNet.forward``."""
        return self.x, self.mask, self.interp, self.dynamic, self.kin


def check_windows(positions, frame_valid, joint_valid, timestamps, V: int, layout: str):
    """Validate and complete the arguments of a batch of windows (one window ``(T, V, 2)``
    becomes a batch of one): ``(positions, frame_valid, joint_valid, timestamps)`` with
    defaults filled in, or a :class:`FinetecError` naming what is wrong."""
    positions = np.asarray(positions, dtype=np.float32)
    if positions.ndim == 3:  # one window
        positions = positions[None]
        frame_valid = np.asarray(frame_valid)[None]
        joint_valid = None if joint_valid is None else np.asarray(joint_valid)[None]
        timestamps = None if timestamps is None else np.asarray(timestamps)[None]
    if positions.ndim != 4 or positions.shape[-1] != 2:
        raise FinetecError(f"positions must be (N, T, V, 2), got shape {positions.shape}")
    N, T = positions.shape[:2]
    if positions.shape[2] != V:
        raise FinetecError(f"positions have {positions.shape[2]} joints but the model uses layout "
                           f"{layout} ({V} joints); map them with layouts.map_layout first")
    if T < MIN_FRAMES:
        raise FinetecError(f"a window needs at least {MIN_FRAMES} frames, got {T}")
    frame_valid = np.asarray(frame_valid, dtype=bool)
    if frame_valid.shape != (N, T):
        raise FinetecError(f"frame_valid must be {(N, T)}, got {frame_valid.shape}")
    if joint_valid is None:
        joint_valid = np.ones((N, T, V), dtype=bool)
    joint_valid = np.asarray(joint_valid, dtype=bool)
    if joint_valid.shape != (N, T, V):
        raise FinetecError(f"joint_valid must be {(N, T, V)}, got {joint_valid.shape}")
    if timestamps is None:
        timestamps = np.broadcast_to(np.arange(T, dtype=np.float64) / 30.0, (N, T))
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.shape != (N, T):
        raise FinetecError(f"timestamps must be {(N, T)} seconds, got {timestamps.shape}")
    if T > 1 and np.any(np.diff(timestamps, axis=1) <= 0):
        raise FinetecError("timestamps must increase strictly along each window")
    return positions, frame_valid, joint_valid, timestamps


@contextlib.contextmanager
def _torch_threads_kept():
    """Undo what Numba's OpenMP layer does to torch's thread count.

    Numba's parallel kernels (threading layer ``omp``) set the process's OpenMP
    thread count, which torch shares: after a batched kernel call torch would
    run on every core whatever ``torch.set_num_threads`` said. Torch is only
    consulted when something has already imported it.
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def prepare_windows(positions, frame_valid, joint_valid, timestamps, *, T: int, layout: str,
                    fill: str = "zeros", kernels: bool | KernelOptions | None = True,
                    interp: str = "linear") -> PreparedBatch:
    """Resample, normalise, fill and run the kernels: ``(N, T_in, V, 2)`` -> :class:`PreparedBatch`.

    ``fill`` is ``"zeros"`` (missing entries are 0 and the mask says so) or
    ``"interp"`` (the linear interpolation, for the ``stgcn-interp`` baseline).
    ``kernels``: a :class:`KernelOptions` (pass ``ModelConfig.needs_kernels``);
    ``True`` runs both; ``False``/``None`` none.
    The outputs of a kernel not run are zeros (``dynamic`` without motion,
    ``kin`` without physics). ``interp`` picks the interpolation given to
    completion (``"linear"`` or ``"akima"``); the ``"interp"`` fill is always
    linear (the baseline).
    """
    return prepare_groups([(positions, frame_valid, joint_valid, timestamps)], T=T,
                          layout=layout, fill=fill, kernels=kernels, interp=interp)


def prepare_groups(groups, *, T: int, layout: str, fill: str = "zeros",
                   kernels: bool | KernelOptions | None = True,
                   interp: str = "linear") -> PreparedBatch:
    """:func:`prepare_windows` of several batches of windows, each of its own length
    (``groups``: ``(positions, frame_valid, joint_valid, timestamps)`` each): every
    batch is resampled to ``T``, then all of them are normalised, filled and run through
    the kernels together, in order. The same numbers as one call per batch, in one pass."""
    if kernels is True:
        kernels = KernelOptions()
    lay = get_layout(layout)
    V = lay.num_joints
    pos, fv, jv, ts = resample_batch(*_padded([check_windows(*g, V, lay.name)
                                               for g in groups]), T)
    N = pos.shape[0]
    parallel = N > SERIAL_KERNELS_UP_TO
    with _torch_threads_kept():  # the kernel twins of normalize and interpolate_missing(_akima)
        xn, centre, scale = normalise_batch(pos, fv, jv, *body_measures(lay),
                                            parallel=parallel)  # zeros where missing
        jv = jv & fv[..., None]
        linear, akima = fill_gaps_batch(xn, jv, parallel=parallel)
    x = linear if fill == "interp" else xn
    interp_arr = akima if interp == "akima" else linear
    dynamic = np.zeros((N, V), dtype=np.float32)
    kin = np.zeros((N, T, V, 4), dtype=np.float32)
    motion = None
    if kernels and kernels.motion:
        motion, dynamic = region_scores(xn, jv, lay)
    if kernels and kernels.physics:
        kin = _kinematics_input(xn, jv, lay, window_gravity(ts))
    return PreparedBatch(x=x.astype(np.float32), mask=jv.astype(np.float32),
                         interp=interp_arr.astype(np.float32), dynamic=dynamic, kin=kin,
                         frame_valid=fv, timestamps=ts, centre=centre, scale=scale,
                         motion=motion)


def _padded(groups):
    """Checked batches of windows of several lengths as one batch ``(positions, frame_valid,
    joint_valid, timestamps)`` of the longest length: each shorter window's last frame is
    repeated, at its own time, to that length. :func:`resample_batch` gives every window
    the numbers it gives it alone (a slot at the last time copies the last frame, which
    the copies equal; no earlier slot reaches them), in one call instead of one per length.
    """
    if len(groups) == 1:
        return groups[0]
    T_max = max(g[0].shape[1] for g in groups)
    out = [[], [], [], []]
    for g in groups:
        T = g[0].shape[1]
        take = np.minimum(np.arange(T_max), T - 1)  # 0, 1, ..., T-1, T-1, ...
        for k, a in enumerate(g):
            out[k].append(a[:, take])
    return tuple(np.concatenate(parts) for parts in out)


def mirror_batch(batch: PreparedBatch, layout: str) -> PreparedBatch:
    """The mirror image of prepared windows (x -> -x, left and right joints swapped), as
    :func:`prepare_groups` gives for the mirrored inputs: positions, gap fills and the
    kernel's acceleration change the sign of x, its generalised force (a torque in the
    image plane) changes sign, masks and dynamic flags follow their joints, and the
    region scores their regions (the regions are left/right symmetric)."""
    lay = get_layout(layout)
    perm = lay.flip_permutation()
    sign = np.array([-1.0, 1.0], np.float32)
    kin = batch.kin[:, :, perm].copy()
    kin[..., 0] *= -1.0
    kin[..., 2] *= -1.0
    motion = None
    if batch.motion is not None:
        motion = batch.motion[:, region_flip_permutation(lay, batch.motion.shape[1])]
    return PreparedBatch(x=batch.x[:, :, perm] * sign, mask=batch.mask[:, :, perm],
                         interp=batch.interp[:, :, perm] * sign,
                         dynamic=batch.dynamic[:, perm], kin=kin,
                         frame_valid=batch.frame_valid, timestamps=batch.timestamps,
                         centre=batch.centre * sign, scale=batch.scale, motion=motion)


def region_flip_permutation(lay, num_regions: int) -> np.ndarray:
    """Index array over the motion kernel's ``num_regions`` scores that swaps the layout's
    left and right regions (by their joints; a region without joints stays)."""
    regions = lay.regions_array()  # (V,) region of each joint
    perm = lay.flip_permutation()
    out = np.arange(num_regions)
    for v in range(len(regions)):
        out[regions[v]] = regions[perm[v]]
    if sorted(out.tolist()) != list(range(num_regions)):
        raise ValueError(f"layout {lay.name}: its mirror does not map regions onto regions")
    return out


def region_scores(xn: np.ndarray, jv: np.ndarray, lay) -> tuple[np.ndarray, np.ndarray]:
    """The region motion kernel on normalised windows ``xn (N, T, V, 2)``: ``(scores (N,
    R), dynamic (N, V))``, the regions' scores and, per joint, 1 (float32) for joints in a
    region the kernel calls dynamic."""
    from finetec_live.kernels import region_motion, region_motion_batch

    regions = lay.regions_array()
    if len(xn) <= SERIAL_KERNELS_UP_TO:
        # the parallel kernels' thread start-up dominates for a few windows
        parts = [region_motion(xn[n], jv[n], regions) for n in range(len(xn))]
        scores = np.stack([p[0] for p in parts])
        dyn_regions = np.stack([p[1] for p in parts])
    else:
        with _torch_threads_kept():
            scores, dyn_regions = region_motion_batch(xn, jv, regions)  # (N, R)
    return scores, dyn_regions[:, regions].astype(np.float32)


def _kinematics_input(xn: np.ndarray, jv: np.ndarray, lay, gravity: np.ndarray) -> np.ndarray:
    """``kin (N, T, V, 4)``: the kernel's acceleration (2) and generalised force (1) in body
    units per grid step², clipped to ``KIN_CLIP``, and the acceleration's validity (1)."""
    from finetec_live.kernels import lagrangian_kinematics, lagrangian_kinematics_batch

    N, T, V = jv.shape
    steps = np.arange(T, dtype=np.float64)  # one time unit per grid step
    args = (lay.parents_array(), lay.masses_array())
    kw = {"half_window": KERNEL_HALF_WINDOW, "max_span": KERNEL_MAX_SPAN}
    if N <= SERIAL_KERNELS_UP_TO:
        parts = [lagrangian_kinematics(xn[n], jv[n], steps, *args, gravity=tuple(gravity[n]),
                                       **kw) for n in range(N)]
        acc, acc_valid, tau, tau_valid = (np.stack([getattr(r, f) for r in parts]) for f in
                                          ("acc", "acc_valid", "tau", "tau_valid"))
    else:
        with _torch_threads_kept():
            res = lagrangian_kinematics_batch(xn, jv, np.broadcast_to(steps, (N, T)), *args,
                                              gravity=gravity, **kw)
        acc, acc_valid, tau, tau_valid = res.acc, res.acc_valid, res.tau, res.tau_valid
    kin = np.zeros((N, T, V, 4), dtype=np.float32)
    kin[..., 0:2] = np.clip(np.where(acc_valid[..., None], acc, 0.0), -KIN_CLIP, KIN_CLIP)
    kin[..., 2] = np.clip(np.where(tau_valid, tau, 0.0), -KIN_CLIP, KIN_CLIP)
    kin[..., 3] = acc_valid
    return kin
