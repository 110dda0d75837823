"""One loader for every data set: :func:`load_dataset` by name or by PYSKL file."""

from __future__ import annotations

import os

from finetec_live.data.clips import ClipSet
from finetec_live.data.jhmdb import load_jhmdb
from finetec_live.data.penn import load_penn_action
from finetec_live.data.pyskl import load_pyskl
from finetec_live.errors import FinetecError

_READERS = {"penn": load_penn_action, "penn_action": load_penn_action,
            "jhmdb": load_jhmdb, "jhmdb1": load_jhmdb, "j-hmdb": load_jhmdb}
_PYSKL_PREFIX = "pyskl:"


def load_dataset(spec: str | os.PathLike, root: str | os.PathLike | None = None,
                 **reader_kwargs) -> ClipSet:
    """The data set ``spec`` as a :class:`ClipSet` that carries its name.

    ``spec`` is ``"penn"`` / ``"penn_action"`` (the set is named ``"penn"``),
    ``"jhmdb"`` (``"jhmdb"``; other splits with ``split=N``), ``"pyskl:PATH"``
    or a path ending in ``.pkl`` (a PYSKL file, named after its stem; ``root``
    does not apply). Names are case-insensitive. ``reader_kwargs`` go to the
    reader: ``mask=`` for Penn Action, ``split=`` for J-HMDB, ``train_split=``,
    ``layout=`` etc. for PYSKL. Penn Action and J-HMDB are cached per process.
    """
    text = os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)
    key = text.lower()
    if key in _READERS:
        return _READERS[key](root, **reader_kwargs)
    if key.startswith(_PYSKL_PREFIX):
        path = text[len(_PYSKL_PREFIX):]
        if not path.strip():
            raise FinetecError(f"data set {text!r} names no file; write pyskl:PATH with the "
                               "path of a PYSKL .pkl annotation file")
        return load_pyskl(path, **reader_kwargs)
    if key.endswith(".pkl"):
        return load_pyskl(text, **reader_kwargs)
    raise FinetecError(f"unknown data set {text!r}; use penn, jhmdb, pyskl:PATH or the path "
                       "of a PYSKL .pkl annotation file")
