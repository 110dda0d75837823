"""Where the real data lives: an argument, ``FINETEC_DATA``, or ``../shared/data``.

A root that is named (by the argument or the variable) must be an existing
folder: an empty value, a file or a missing path is a :class:`FinetecError`
naming where the value came from, never a silent fall-back to the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from finetec_live.errors import FinetecError

ENV_VAR = "FINETEC_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_HOLDS = "the folder holding penn_action/, jhmdb/ and videos/"


def default_data_candidates() -> list[Path]:
    """Places searched when neither an argument nor the environment names a root."""
    return [Path.cwd().parent / "shared" / "data", _PROJECT_ROOT.parent / "shared" / "data",
            Path.cwd() / "shared" / "data"]


def _named_root(value: str, source: str, fix: str) -> Path:
    """``value`` as a folder; FinetecError "<source> <problem>; <fix>" when it is not one."""
    if not value.strip():
        raise FinetecError(f"{source} is empty; {fix}")
    root = Path(value)
    if root.is_dir():
        return root
    problem = "is a file, not a folder" if root.exists() else "does not exist"
    raise FinetecError(f"{source} {value!r} {problem}; {fix}")


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data root, raising :class:`FinetecError` when it does not exist.

    ``path`` wins; else ``$FINETEC_DATA`` (set but empty, whitespace, a file or
    a missing path is an error, not a fall-back); else the first existing
    :func:`default_data_candidates` folder.
    """
    if path is not None:
        return _named_root(os.fspath(path), "data directory",
                           f"pass --data-root {_HOLDS}")
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return _named_root(env, ENV_VAR, f"set {ENV_VAR} to {_HOLDS}, or unset it")
    for cand in default_data_candidates():
        if cand.is_dir():
            return cand
    raise FinetecError(f"no data directory found; pass --data-root or set {ENV_VAR} to "
                       f"{_HOLDS}")


def dataset_dir(root: str | os.PathLike | None, sub: str, holds: str) -> Path:
    """``<data root>/<sub>`` resolved; FinetecError naming what the root must hold when absent."""
    folder = data_root(root) / sub
    if not folder.is_dir():
        raise FinetecError(f"{folder} not found; the data root must hold {holds}")
    return folder.resolve()


def cache_dir() -> Path:
    """Where generated files live (the pose models' bundle, exported networks):
    ``$FINETEC_CACHE`` or ``~/.cache/finetec-live``."""
    return Path(os.environ.get("FINETEC_CACHE") or Path.home() / ".cache" / "finetec-live")
