"""Where the real data lives: an argument, ``FINETEC_DATA``, or ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

from finetec_live.errors import FinetecError

ENV_VAR = "FINETEC_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_candidates() -> list[Path]:
    """Places searched when neither an argument nor the environment names a root."""
    return [Path.cwd().parent / "shared" / "data", _PROJECT_ROOT.parent / "shared" / "data",
            Path.cwd() / "shared" / "data"]


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data root, raising :class:`FinetecError` when it does not exist."""
    if path is not None:
        root = Path(path)
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        for cand in default_data_candidates():
            if cand.is_dir():
                return cand
        raise FinetecError(f"no data directory found; pass --data-root or set {ENV_VAR} to the "
                           "folder holding penn_action/, jhmdb/ and videos/")
    if not root.is_dir():
        raise FinetecError(f"data directory {root} does not exist; pass --data-root or set "
                           f"{ENV_VAR} to the folder holding penn_action/, jhmdb/ and videos/")
    return root
