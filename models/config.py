"""The architecture of a :class:`~finetec_live.models.FinetecNet`, bounded before anything is built.

A :class:`ModelConfig` travels inside every checkpoint as a plain dict. A
checkpoint is input like any other file, so every field is checked for its type
and against a documented upper bound before a single tensor is allocated: a
10 kB file asking for ``completion_bank=10**7`` (about 66 GB of prototypes) is
refused with a ``ValueError`` naming the field, its value and the bound.

Bounds (:data:`LIMITS`, inclusive) are generous for skeleton windows: the
shipped models use ``T=64``, channels up to 64, a bank of 1024 prototypes.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import asdict, dataclass, fields

from finetec_live.inference.prepare import KernelOptions
from finetec_live.skeleton.layouts import get_layout

log = logging.getLogger(__name__)

METHODS = ("finetec", "stgcn-zero", "stgcn-interp")
ATTENTION_HEADS = 4  # heads of each temporal self-attention block (hidden must divide)

# (lowest, highest) accepted value of every size field
LIMITS: dict[str, tuple[int, int]] = {
    "num_classes": (2, 10_000),
    "T": (8, 1024),  # frames per window on the model's grid (8: the fewest prepare accepts)
    "blocks": (1, 16),  # ST-GCN blocks = len(channels) = len(strides)
    "channels": (1, 512),  # each block's width
    "strides": (1, 4),
    "temporal_kernel": (1, 15),
    "completion_hidden": (1, 1024),
    "completion_blocks": (0, 32),
    "completion_dilation_cycle": (1, 8),  # dilation up to 2 ** 7
    "completion_attention": (0, 8),
    "completion_bank": (0, 8192),
    "completion_bank_k": (1, 256),
    "physics_hidden": (1, 1024),
}
# the bank holds completion_bank * T * V entries (2 coordinates + 3 derived keys each)
MAX_BANK_ENTRIES = 1 << 24  # ~16.8 M entries, ~340 MB of float32
FLOAT_LIMITS: dict[str, tuple[float, float]] = {
    "dropout": (0.0, 1.0),
    "strong_sigma": (0.0, 10.0),
    "weak_sigma": (0.0, 10.0),
}
BOOL_FIELDS = ("completion", "decomposition", "physics")
# fields some checkpoints carry that this version no longer has, with the value that
# means what this version does; dropped on load (a warning when the value differs)
OBSOLETE_FIELDS = {"extra": {}, "kernel_gravity": "grid"}


def _int(name: str, value, bound: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    lo, hi = bound
    if not lo <= value <= hi:
        raise ValueError(f"{name} = {value} is outside the bound [{lo}, {hi}]")
    return int(value)


def _float(name: str, value, bound: tuple[float, float]) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    lo, hi = bound
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} = {value} is outside the bound [{lo}, {hi}]")
    return float(value)


def _choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def _int_tuple(name: str, value, bound: tuple[int, int]) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    lo, hi = LIMITS["blocks"]
    if not lo <= len(value) <= hi:
        raise ValueError(f"{name} has {len(value)} entries, outside the bound [{lo}, {hi}] "
                         "(one per ST-GCN block)")
    return tuple(_int(f"{name}[{i}]", v, bound) for i, v in enumerate(value))


@dataclass
class ModelConfig:
    """Architecture and switches; stored in the checkpoint as a plain dict.

    Every field is validated in ``__post_init__`` (types, choices and the
    bounds in :data:`LIMITS`); a bad value raises ``ValueError`` naming it.
    """

    num_classes: int
    layout: str = "penn13"
    method: str = "finetec"
    completion: bool = True
    decomposition: bool = True
    physics: bool = True
    T: int = 64
    channels: tuple[int, ...] = (32, 64, 64, 64)
    strides: tuple[int, ...] = (2, 2, 1, 1)
    temporal_kernel: int = 7
    completion_hidden: int = 128
    completion_blocks: int = 3
    completion_mixing: str = "conv"  # "conv" (dilated, shift-invariant) or "linear" (Mixer)
    completion_dilation_cycle: int = 3  # conv block i has dilation 2 ** (i % cycle)
    completion_attention: int = 0  # temporal self-attention blocks after the mixer blocks
    completion_bank: int = 0  # k-means centroid sequences completion retrieves from (0: off)
    completion_bank_k: int = 10  # centroids mixed per window
    interp: str = "akima"  # the interpolation completion starts from: "akima" or "linear"
    physics_hidden: int = 16
    dropout: float = 0.2
    strong_sigma: float = 0.08  # perturbation of dynamic regions (training only), body units
    weak_sigma: float = 0.02  # perturbation of static regions (training only)

    def __post_init__(self) -> None:
        self.method = _choice("method", self.method, METHODS)
        if not isinstance(self.layout, str):
            raise ValueError(f"layout must be a layout name, got {self.layout!r}")
        V = get_layout(self.layout).num_joints
        for name in BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, bound in LIMITS.items():
            if name not in ("blocks", "channels", "strides"):
                setattr(self, name, _int(name, getattr(self, name), bound))
        self.channels = _int_tuple("channels", self.channels, LIMITS["channels"])
        self.strides = _int_tuple("strides", self.strides, LIMITS["strides"])
        if len(self.channels) != len(self.strides):
            raise ValueError(f"channels {self.channels} and strides {self.strides} must have the "
                             "same length")
        for name, fbound in FLOAT_LIMITS.items():
            setattr(self, name, _float(name, getattr(self, name), fbound))
        self.interp = _choice("interp", self.interp, ("akima", "linear"))
        self.completion_mixing = _choice("completion_mixing", self.completion_mixing,
                                         ("conv", "linear"))
        if self.completion_attention and self.completion_hidden % ATTENTION_HEADS:
            raise ValueError(f"completion_hidden = {self.completion_hidden} must be a multiple "
                             f"of {ATTENTION_HEADS} (attention heads) when completion_attention "
                             "is on")
        entries = self.completion_bank * self.T * V
        if entries > MAX_BANK_ENTRIES:
            raise ValueError(f"completion_bank * T * joints = {self.completion_bank} * {self.T} "
                             f"* {V} = {entries} is outside the bound {MAX_BANK_ENTRIES}")
        if self.method != "finetec":  # the baselines are plain ST-GCNs
            self.completion = self.decomposition = self.physics = False
            self.interp = "linear"

    @property
    def fill(self) -> str:
        """How missing frames are given to the network: ``"zeros"`` or ``"interp"``."""
        return "interp" if self.method == "stgcn-interp" else "zeros"

    @property
    def needs_kernels(self) -> KernelOptions | None:
        """The kernels :func:`~finetec_live.inference.prepare.prepare_windows` must run for
        this model (pass it as ``kernels=``), or ``None`` when the model uses none."""
        if self.method != "finetec" or not (self.physics or self.decomposition):
            return None
        return KernelOptions(motion=self.decomposition, physics=self.physics)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["strides"] = list(self.strides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """A config from a checkpoint's dict; unknown fields are refused (``ValueError``)."""
        if not isinstance(d, dict):
            raise ValueError(f"the model config must be a dict, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        d = dict(d)
        for old, neutral in OBSOLETE_FIELDS.items():
            if old in d and d.pop(old) != neutral:
                log.warning("model config field %r is no longer used; ignored", old)
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"the model config has unknown fields {unknown}; this version "
                             f"knows {sorted(names)}")
        # checkpoints written before these options existed used linear mixing and interpolation
        d.setdefault("completion_mixing", "linear")
        d.setdefault("interp", "linear")
        return cls(**d)
