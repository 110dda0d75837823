"""Shared fixtures.

``data_root``: the real data folder (``FINETEC_DATA`` or ``../shared/data``).
Without it the data tests are skipped locally, but they fail when the
environment variable ``CI`` is set: CI has the data and must run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetec_live.data.paths import data_root as _data_root
from finetec_live.errors import FinetecError


@pytest.fixture(scope="session")
def data_root() -> Path:
    try:
        root = _data_root()
    except FinetecError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real data missing in CI: {exc}")
        pytest.skip(f"real data not available: {exc}")
    return root


@pytest.fixture(scope="session")
def penn(data_root):
    """Penn Action as a ClipSet (parsed once per session)."""
    from finetec_live.data import load_penn_action

    return load_penn_action(data_root)


@pytest.fixture(scope="session")
def jhmdb(data_root):
    """J-HMDB split 1 as a ClipSet (parsed once per session)."""
    from finetec_live.data import load_jhmdb

    return load_jhmdb(data_root)
