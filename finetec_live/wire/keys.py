"""CURVE key files and the authenticator that checks subscribers against an allow-list.

Key files are ZeroMQ's ZPL certificates, as ``zmq.auth.create_certificates``
writes them and ``zmq.auth.load_certificate`` reads them: ``NAME.key`` holds the
public key, ``NAME.key_secret`` both keys. The secret file is created with mode
0600 from its first byte (never written world-readable and then restricted).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import zmq

from finetec_live.errors import FinetecError

_BANNER = """#   ****  Generated on {when} by finetec-live keygen  ****
#   ZeroMQ CURVE {kind} Certificate
#   {advice}

"""
_PUBLIC_ADVICE = "Public key: give it to the other side (server.key to subscribers)."
_SECRET_ADVICE = "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."


def certificate_text(public: bytes, secret: bytes | None = None) -> str:
    """A ZPL certificate holding ``public`` (and ``secret``), Z85 text keys."""
    kind, advice = ("**Secret**", _SECRET_ADVICE) if secret else ("Public", _PUBLIC_ADVICE)
    text = _BANNER.format(when=datetime.datetime.now().isoformat(timespec="seconds"), kind=kind,
                          advice=advice)
    text += f'metadata\ncurve\n    public-key = "{public.decode("ascii")}"\n'
    if secret:
        text += f'    secret-key = "{secret.decode("ascii")}"\n'
    return text


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``mode`` (it must not exist) and write ``text``."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)


def generate_keys(directory: str | os.PathLike, names: tuple[str, ...] = ("server", "client"),
                  overwrite: bool = False) -> dict[str, tuple[Path, Path]]:
    """Write a CURVE key pair per name: ``NAME.key`` (public, 0644) and ``NAME.key_secret`` (0600).

    Returns ``{name: (public_file, secret_file)}``. Existing files are kept
    unless ``overwrite`` (then they are replaced): a :class:`FinetecError`
    names them, and nothing is written. A folder that cannot be created or
    written is a :class:`FinetecError` too.
    """
    if not zmq.has("curve"):
        raise FinetecError("this libzmq has no CURVE support; install pyzmq from its wheels")
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FinetecError(f"cannot create key folder {d}: a file is in the way; choose a "
                           "folder path") from None
    except OSError as exc:
        raise FinetecError(f"cannot create key folder {d} ({exc.strerror}); choose a writable "
                           "folder") from None
    pairs = {name: (d / f"{name}.key", d / f"{name}.key_secret") for name in names}
    existing = [str(f) for pair in pairs.values() for f in pair if f.exists() or f.is_symlink()]
    if existing and not overwrite:
        raise FinetecError(f"key files already exist: {', '.join(existing)}; remove them, pass "
                           "--force, or choose another directory")
    try:
        for pub_file, sec_file in pairs.values():
            public, secret = zmq.curve_keypair()
            for f in (pub_file, sec_file):
                if overwrite and (f.exists() or f.is_symlink()):
                    f.unlink()
            _write_new(sec_file, certificate_text(public, secret), 0o600)
            _write_new(pub_file, certificate_text(public), 0o644)
    except OSError as exc:
        where = exc.filename or d
        raise FinetecError(f"cannot write key file {where} ({exc.strerror}); choose a writable "
                           "folder") from None
    return pairs


def _load_certificate(path: str | os.PathLike, part: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a key file written by ``finetec-live keygen``."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise FinetecError(f"cannot read CURVE key file {path} ({exc}); generate keys with "
                           "`finetec-live keygen DIR`") from None
    if not (public if part == "public" else secret):
        suffix = ".key" if part == "public" else ".key_secret"
        raise FinetecError(f"{path} holds no {part} key; pass the NAME{suffix} file written "
                           "by `finetec-live keygen DIR`")
    return public, secret


def load_public_key(path: str | os.PathLike) -> bytes:
    """The public key of a ``NAME.key`` (or ``NAME.key_secret``) file."""
    return _load_certificate(path, "public")[0]


def load_secret_key(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``NAME.key_secret`` file."""
    return _load_certificate(path, "secret")


def check_clients_dir(clients_dir: str | os.PathLike) -> Path:
    """``clients_dir`` when it holds at least one ``*.key`` public key file."""
    d = Path(clients_dir)
    if not d.is_dir() or not list(d.glob("*.key")):
        raise FinetecError(f"--curve-clients {d} holds no *.key public key files; copy the "
                           "clients' NAME.key files there")
    return d


def start_authenticator(context: zmq.Context, clients_dir: str | os.PathLike):
    """Allow only the client public keys found in ``clients_dir`` (``*.key``).

    Starts ZeroMQ's authenticator thread for ``context`` (one per context: it
    answers for every CURVE socket of that context). It must run before the
    socket binds (a connection accepted earlier is not checked); the caller
    calls ``.stop()`` at exit. :func:`~finetec_live.wire.publisher.open_publisher`
    does both.
    """
    from zmq.auth.thread import ThreadAuthenticator

    d = check_clients_dir(clients_dir)
    auth = ThreadAuthenticator(context)
    auth.start()
    try:
        auth.configure_curve(domain="*", location=str(d))
    except BaseException:
        auth.stop()
        raise
    return auth
