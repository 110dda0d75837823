"""Writing checkpoints: atomic saves and the ``stages`` record every run appends.

Each training or refit run adds one record to the checkpoint's ``stages`` list:
``{command, seconds, git_commit, git_dirty, date, changed, options}``, after the
records of the checkpoint it started from (read with
:func:`finetec_live.inference.checkpoint.checkpoint_stages`, which also knows the
older ``command`` / ``base_command`` keys). Reading is in
:mod:`finetec_live.inference.checkpoint`.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
from pathlib import Path

from finetec_live.inference.checkpoint import checkpoint_stages

REPO = Path(__file__).resolve().parents[2]


def atomic_save(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it over ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def git_state(repo: Path = REPO) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the source tree the code runs from; ``(None, None)`` outside
    a git checkout (an installed package) or without git."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "-uno"],
                                check=True, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(status.strip())


def stage_record(command: str, seconds: float, changed: str, options: dict,
                 started: _dt.datetime | None = None) -> dict:
    """One run's record for a checkpoint's ``stages``."""
    commit, dirty = git_state()
    when = started or _dt.datetime.now(_dt.timezone.utc)
    return {"command": command, "seconds": float(seconds), "git_commit": commit,
            "git_dirty": dirty, "date": when.isoformat(timespec="seconds"),
            "changed": changed, "options": options}


def run_record(command: str) -> dict:
    """Which command, on which code, made a result: ``{command, git_commit, git_dirty, date}``
    (an evaluation's JSON carries it; ``git_dirty`` True means uncommitted changes)."""
    commit, dirty = git_state()
    return {"command": command, "git_commit": commit, "git_dirty": dirty,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def with_stage(base: dict | None, record: dict) -> list[dict]:
    """The stages of ``base`` (a checkpoint dict, or ``None`` for a fresh run) plus ``record``."""
    return [*(checkpoint_stages(base) if base else []), record]
