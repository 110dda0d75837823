"""J-HMDB ground-truth puppet joints as prepared by DD-Net: 15 joints, 14 classes.

Reads ``<root>/jhmdb/GT_train_<split>.pkl`` and ``GT_test_<split>.pkl`` with
:func:`~finetec_live.data.safepickle.safe_load_pickle`, which rebuilds numpy
arrays and plain containers and refuses every other global.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from finetec_live.data.clips import SPLITS, Clip, ClipSet, class_index
from finetec_live.data.paths import dataset_dir
from finetec_live.data.safepickle import safe_load_pickle
from finetec_live.errors import FinetecError

# HMDB51 (J-HMDB's source) was converted to 30 fps by its authors; the
# annotation files store no rate.
JHMDB_FPS = 30.0
JHMDB_CLASSES = ("catch", "clap", "golf", "jump", "pick", "pour", "pullup", "push", "run",
                 "sit", "stand", "throw", "walk", "wave")
_FIX = "replace it with an intact copy"


def _read_split_file(path: Path) -> dict:
    """One ``GT_<train|test>_<split>.pkl``: a dict of equally long ``pose`` and ``label`` lists."""
    obj = safe_load_pickle(path)
    if (not isinstance(obj, dict) or not isinstance(obj.get("pose"), list)
            or not isinstance(obj.get("label"), list)
            or len(obj["pose"]) != len(obj["label"])):
        raise FinetecError(f"{path} is not a DD-Net J-HMDB file (a dict with equally long "
                           f"'pose' and 'label' lists); {_FIX}")
    for i, (pose, lab) in enumerate(zip(obj["pose"], obj["label"], strict=True)):
        if (not isinstance(pose, np.ndarray) or pose.ndim != 3 or pose.shape[1:] != (15, 2)
                or pose.shape[0] < 1 or not isinstance(lab, str)):
            raise FinetecError(f"{path}: entry {i} is not a (T, 15, 2) pose with a string "
                               f"label; {_FIX}")
    return obj


def _set_name(split: int) -> str:
    return "jhmdb" if split == 1 else f"jhmdb_split{split}"


@functools.lru_cache(maxsize=4)
def _load_jhmdb_cached(jdir: str, split: int) -> ClipSet:
    parts = {name: _read_split_file(Path(jdir) / f"GT_{name}_{split}.pkl") for name in SPLITS}
    class_names, index = class_index(lab for obj in parts.values() for lab in obj["label"])
    clips = []
    for name, obj in parts.items():
        for i, (pose, lab) in enumerate(zip(obj["pose"], obj["label"], strict=True)):
            pos = np.asarray(pose, dtype=np.float32)
            clips.append(Clip(name=f"{name}_{i:04d}", positions=pos,
                              joint_valid=np.isfinite(pos).all(axis=-1), label=index[lab],
                              label_name=lab, split=name, fps=JHMDB_FPS, layout="jhmdb15"))
    return ClipSet(_set_name(split), tuple(clips), class_names, "jhmdb15")


def load_jhmdb(root: str | os.PathLike | None = None, split: int = 1) -> ClipSet:
    """J-HMDB ground-truth puppet joints as prepared by DD-Net (split 1: 433 / 176 clips).

    Reads ``<root>/jhmdb/GT_train_<split>.pkl`` and ``GT_test_<split>.pkl`` (a dict
    with a ``pose`` list of ``(T, 15, 2)`` float arrays in normalised
    coordinates and a ``label`` list of class names). 14 classes (DD-Net's
    preprocessing lost 7 of the 21). Every joint is valid (the puppet is
    complete); clip names are ``"train_0000"`` etc. in file order. The set is
    named ``"jhmdb"`` for split 1 and ``"jhmdb_split<N>"`` otherwise. Cached per
    process.
    """
    jdir = dataset_dir(root, "jhmdb", f"jhmdb/GT_train_{split}.pkl and GT_test_{split}.pkl")
    return _load_jhmdb_cached(str(jdir), int(split))
