"""Clips of actions a model's classes do not include, for its ``unknown`` decision.

For the Penn Action model these are J-HMDB's clips of the 12 actions Penn lacks (all of
J-HMDB's 14 kept classes but ``golf`` and ``pullup``), mapped to penn13 (J-HMDB's puppet
``face`` is Penn's ``head``). Their training split is split once more, stratified with a
fixed seed, into clips that training may use (outlier exposure) and clips held out to
calibrate the ``unknown`` threshold; their test split is for the evaluation only.
"""

from __future__ import annotations

import os

from finetec_live.data.clips import Clip
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import map_layout

# J-HMDB classes that are Penn Action classes (golf swing, pull-up)
PENN_IN_JHMDB = ("golf", "pullup")
CALIBRATION_FRACTION = 0.25
CALIBRATION_SEED = 11


def _mapped(clip: Clip, layout: str) -> Clip:
    pos, jv = map_layout(clip.positions, clip.joint_valid, clip.layout, layout)
    return Clip(name=f"jhmdb/{clip.name}", positions=pos, joint_valid=jv, label=clip.label,
                label_name=clip.label_name, split=clip.split, fps=clip.fps, layout=layout)


def jhmdb_outliers(split: str, root: str | os.PathLike | None = None,
                   layout: str = "penn13") -> list[Clip]:
    """J-HMDB split-1 clips of ``split`` (``"train"`` or ``"test"``) whose actions Penn
    Action lacks, mapped to ``layout`` (labels are J-HMDB's)."""
    from finetec_live.data.jhmdb import load_jhmdb

    if split not in ("train", "test"):
        raise FinetecError(f"split {split!r}: use train or test")
    clipset = load_jhmdb(root)
    return [_mapped(c, layout) for c in clipset.clips
            if c.split == split and c.label_name not in PENN_IN_JHMDB]


def split_outliers(clips, fraction: float = CALIBRATION_FRACTION,
                   seed: int = CALIBRATION_SEED) -> tuple[list[Clip], list[Clip]]:
    """``(for_training, for_calibration)``: the stratified carve-out of
    :func:`~finetec_live.learning.windows.split_train_val` (``round(fraction * n)`` clips
    of each action of ``n`` go to calibration), with this module's fraction and seed."""
    from finetec_live.learning.windows import split_train_val

    return split_train_val(clips, fraction, seed)
