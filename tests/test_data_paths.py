"""The data root: a malformed FINETEC_DATA is one clear error, never a silent fall-back."""

from __future__ import annotations

import pytest

from finetec_live.data import ENV_VAR, data_root, load_penn_action
from finetec_live.errors import FinetecError


def _one_line_error(**match) -> str:
    with pytest.raises(FinetecError) as info:
        data_root(**match)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_variable_is_an_error(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    msg = _one_line_error()
    assert msg.startswith(f"{ENV_VAR} is empty;")
    assert f"set {ENV_VAR} to the folder holding" in msg and "unset it" in msg


def test_variable_naming_a_file(monkeypatch, tmp_path):
    f = tmp_path / "data.txt"
    f.write_text("not a folder")
    monkeypatch.setenv(ENV_VAR, str(f))
    msg = _one_line_error()
    assert msg.startswith(f"{ENV_VAR} '{f}' is a file, not a folder;")
    assert f"set {ENV_VAR} to the folder holding penn_action/" in msg


def test_variable_naming_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    msg = _one_line_error()
    assert msg.startswith(f"{ENV_VAR} '{tmp_path / 'nowhere'}' does not exist;")
    # the readers pass the same error on
    with pytest.raises(FinetecError, match=f"^{ENV_VAR} .* does not exist"):
        load_penn_action()


def test_variable_naming_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert data_root() == tmp_path


def test_argument_wins_over_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, "")
    assert data_root(tmp_path) == tmp_path
    f = tmp_path / "file"
    f.write_text("x")
    msg = _one_line_error(path=f)
    assert msg.startswith(f"data directory '{f}' is a file, not a folder; pass --data-root")
    assert _one_line_error(path=" ").startswith("data directory is empty; pass --data-root")
