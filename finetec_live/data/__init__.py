"""Labelled skeleton clips: the containers, the readers, one loader, and where the data lives.

- :mod:`~finetec_live.data.clips`: :class:`Clip`, :class:`ClipSet`.
- :mod:`~finetec_live.data.penn`, :mod:`~finetec_live.data.jhmdb`,
  :mod:`~finetec_live.data.pyskl`: one reader per format.
- :mod:`~finetec_live.data.loader`: :func:`load_dataset` (``"penn"``, ``"jhmdb"``,
  ``"pyskl:PATH"`` or ``PATH.pkl``), the one entry point callers need.
- :mod:`~finetec_live.data.paths`: :func:`data_root` (argument, ``FINETEC_DATA``,
  ``../shared/data``).
- :mod:`~finetec_live.data.safepickle`: pickles that may hold numpy arrays only.
- :mod:`~finetec_live.data.masks`, :mod:`~finetec_live.data.corruption`: which
  frames of a window are missing (imported on their own, not from here).
"""

from __future__ import annotations

from finetec_live.data.clips import SPLITS, Clip, ClipSet
from finetec_live.data.jhmdb import JHMDB_CLASSES, JHMDB_FPS, load_jhmdb
from finetec_live.data.loader import load_dataset
from finetec_live.data.paths import ENV_VAR, data_root
from finetec_live.data.penn import (
    PENN_CLASSES,
    PENN_FPS,
    PENN_MASKS,
    PENN_PLACEHOLDER_MAX,
    load_penn_action,
)
from finetec_live.data.pyskl import load_pyskl
from finetec_live.data.safepickle import RestrictedUnpickler, safe_load_pickle

__all__ = [
    "ENV_VAR",
    "JHMDB_CLASSES",
    "JHMDB_FPS",
    "PENN_CLASSES",
    "PENN_FPS",
    "PENN_MASKS",
    "PENN_PLACEHOLDER_MAX",
    "SPLITS",
    "Clip",
    "ClipSet",
    "RestrictedUnpickler",
    "data_root",
    "load_dataset",
    "load_jhmdb",
    "load_penn_action",
    "load_pyskl",
    "safe_load_pickle",
]
