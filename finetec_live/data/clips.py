"""The containers every reader returns: :class:`Clip` (one labelled skeleton clip) and
:class:`ClipSet` (the clips of one data set with its class names and layout).

Positions of invalid joints are kept as the file holds them; code must look at
``joint_valid``, never at the values. Arrays inside clips are read-only because
parsed data sets are cached per process and shared between callers: copy
before changing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from finetec_live.skeleton.layouts import LAYOUTS, get_layout

SPLITS = ("train", "test")


def _frozen_array(value, dtype) -> np.ndarray:
    arr = np.array(value, dtype=dtype, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class Clip:
    """One labelled skeleton clip.

    Attributes
    ----------
    name : identifier unique within its data set (Penn: ``"0001"``).
    positions : ``(T, V, 2)`` float32, x right and y down (pixels for Penn
        Action, the file's units otherwise).
    joint_valid : ``(T, V)`` bool, True where the joint's position is known.
    label : class index into the owning :class:`ClipSet`'s ``class_names``.
    label_name : the class name.
    split : ``"train"`` or ``"test"``.
    fps : nominal frame rate of the clip.
    layout : layout name from :data:`finetec_live.skeleton.layouts.LAYOUTS`.
    """

    name: str
    positions: np.ndarray
    joint_valid: np.ndarray
    label: int
    label_name: str
    split: str
    fps: float
    layout: str

    def __post_init__(self) -> None:
        pos = _frozen_array(self.positions, np.float32)
        valid = _frozen_array(self.joint_valid, bool)
        if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[0] < 1:
            raise ValueError(f"clip {self.name}: positions has shape {pos.shape}, "
                             "expected (T, V, 2) with T >= 1")
        if valid.shape != pos.shape[:2]:
            raise ValueError(f"clip {self.name}: joint_valid has shape {valid.shape}, "
                             f"expected {pos.shape[:2]}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"clip {self.name}: unknown layout {self.layout!r}")
        if pos.shape[1] != LAYOUTS[self.layout].num_joints:
            raise ValueError(f"clip {self.name}: {pos.shape[1]} joints, layout {self.layout} "
                             f"has {LAYOUTS[self.layout].num_joints}")
        if self.split not in SPLITS:
            raise ValueError(f"clip {self.name}: split {self.split!r}, expected one of {SPLITS}")
        if not self.fps > 0:
            raise ValueError(f"clip {self.name}: fps must be positive, got {self.fps}")
        if int(self.label) < 0:
            raise ValueError(f"clip {self.name}: label must be >= 0, got {self.label}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "joint_valid", valid)
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.positions.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by the clip at its nominal frame rate."""
        return self.num_frames / self.fps

    @property
    def frame_valid(self) -> np.ndarray:
        """``(T,)`` bool: frames with at least one valid joint."""
        return self.joint_valid.any(axis=1)

    def timestamps(self) -> np.ndarray:
        """``(T,)`` float64 seconds of each frame at the nominal rate, starting at 0."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps


@dataclass(frozen=True)
class ClipSet:
    """The clips of one data set with its class names (index = label) and layout."""

    name: str
    clips: tuple[Clip, ...]
    class_names: tuple[str, ...]
    layout: str
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "clips", tuple(self.clips))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        get_layout(self.layout)
        for c in self.clips:
            if c.layout != self.layout:
                raise ValueError(f"{self.name}: clip {c.name} has layout {c.layout}, "
                                 f"the set has {self.layout}")
            if c.label >= len(self.class_names) or self.class_names[c.label] != c.label_name:
                raise ValueError(f"{self.name}: clip {c.name} label {c.label} "
                                 f"({c.label_name!r}) does not match class_names")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.clips})

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __getitem__(self, index: int | str) -> Clip:
        if isinstance(index, str):
            return self._by_name[index]
        return self.clips[index]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, split: str) -> ClipSet:
        """The clips of one split, same class names and layout."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return ClipSet(f"{self.name}:{split}", tuple(c for c in self.clips if c.split == split),
                       self.class_names, self.layout)

    def train(self) -> ClipSet:
        return self.subset("train")

    def test(self) -> ClipSet:
        return self.subset("test")

    def labels(self) -> np.ndarray:
        """``(N,)`` int64 labels in clip order."""
        return np.asarray([c.label for c in self.clips], dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """``(N,)`` int64 frame counts in clip order."""
        return np.asarray([c.num_frames for c in self.clips], dtype=np.int64)


def class_index(labels: Iterable[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Class names sorted alphabetically (index = label) and the name -> label map."""
    names = tuple(sorted(set(labels)))
    return names, {n: i for i, n in enumerate(names)}
