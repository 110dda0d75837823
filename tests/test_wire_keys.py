"""CURVE key files: written 0600 from the first byte, readable by zmq.auth, and
`finetec-live keygen` into a bad path is one error line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq.auth

from finetec_live.errors import FinetecError
from finetec_live.wire.keys import generate_keys, load_public_key, load_secret_key

LIVE = [sys.executable, "-m", "finetec_live.cli.live"]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_secret_files_are_created_0600_without_a_later_chmod(tmp_path, monkeypatch):
    # with chmod disabled and a permissive umask, only the mode given at creation counts
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0o022)
    try:
        keys = generate_keys(tmp_path / "keys")
    finally:
        os.umask(old)
    for public_file, secret_file in keys.values():
        assert _mode(secret_file) == 0o600
        assert _mode(public_file) == 0o644


def test_key_files_load_with_zmq_auth(tmp_path):
    keys = generate_keys(tmp_path)
    for public_file, secret_file in keys.values():
        public, secret = zmq.auth.load_certificate(str(secret_file))
        assert len(public) == 40 and len(secret) == 40
        assert zmq.auth.load_certificate(str(public_file)) == (public, None)
        assert load_secret_key(secret_file) == (public, secret)
        assert load_public_key(public_file) == public
    # the authenticator's directory loader reads them too
    assert len(zmq.auth.load_certificates(str(tmp_path))) == 2
    server = load_secret_key(keys["server"][1])
    client = load_secret_key(keys["client"][1])
    assert server != client


def test_existing_keys_are_kept_and_nothing_is_written(tmp_path):
    (tmp_path / "client.key").write_text("mine")
    with pytest.raises(FinetecError, match=r"already exist.*client\.key"):
        generate_keys(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.key"]
    assert (tmp_path / "client.key").read_text() == "mine"


def test_overwrite_replaces_the_pairs(tmp_path):
    first = load_secret_key(generate_keys(tmp_path)["server"][1])
    keys = generate_keys(tmp_path, overwrite=True)
    assert load_secret_key(keys["server"][1]) != first
    assert _mode(keys["server"][1]) == 0o600


def _one_error_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_keygen_into_a_file_is_one_error_line(tmp_path):
    blocker = tmp_path / "keys"
    blocker.write_text("not a folder")
    r = subprocess.run([*LIVE, "keygen", str(blocker)], capture_output=True, text=True,
                       timeout=60)
    _one_error_line(r, "a file is in the way", str(blocker))
    r = subprocess.run([*LIVE, "keygen", str(blocker / "sub")], capture_output=True, text=True,
                       timeout=60)
    _one_error_line(r, "cannot create key folder")


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores modes: /sys then)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        os.chmod(locked, 0o555)
        return locked
    try:
        os.close(os.open("/sys/finetec-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except PermissionError:
        return Path("/sys")
    except OSError:
        pass
    pytest.skip("no folder here that root cannot write")


def test_keygen_into_an_unwritable_folder_is_one_error_line(tmp_path):
    folder = _unwritable_folder(tmp_path)
    before = set(folder.iterdir())
    r = subprocess.run([*LIVE, "keygen", str(folder)], capture_output=True, text=True,
                       timeout=60)
    _one_error_line(r, "cannot write key file", "Permission denied")
    assert set(folder.iterdir()) == before
