"""ZeroMQ endpoints: parsing, checks, the loopback test and the ``ipc://`` in-use probe.

Accepted: ``tcp://HOST:PORT`` (HOST an IPv4 or bracketed IPv6 literal, a host or
interface name, or ``*``; PORT 1..65535, or ``0`` / ``*`` for an ephemeral port
when binding) and ``ipc://PATH``. ``inproc://`` is refused: no other process can
connect to it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import socket
import stat
import time
from dataclasses import dataclass

from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)

IPC_PROBES = 10  # connect probes of an existing ipc socket file before calling it in use
IPC_PROBE_PAUSE_S = 0.1

DEFAULT_BIND = "tcp://127.0.0.1:5557"
_TCP_RE = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/\[\]]+|\*):(?P<port>\d+|\*)$")
_EXAMPLE = "e.g. tcp://127.0.0.1:5557 or ipc:///tmp/finetec.sock"


@dataclass(frozen=True)
class Endpoint:
    """A checked endpoint: ``transport`` is ``tcp`` or ``ipc``.

    For tcp, ``host`` is without brackets and ``port`` is ``None`` for an
    ephemeral port; for ipc, ``path`` is the socket file (``@name``: Linux's
    abstract namespace).
    """

    text: str
    transport: str
    host: str = ""
    port: int | None = None
    path: str = ""

    @property
    def ipv6(self) -> bool:
        """True when the socket needs ``zmq.IPV6``: an IPv6 literal, or the ``*``
        wildcard (then it listens on IPv6 and IPv4 both)."""
        return self.transport == "tcp" and (":" in self.host or self.host == "*")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.text)


def parse_endpoint(text: str, option: str = "--bind") -> Endpoint:
    """Check ``text`` as an endpoint for ``option`` (``--bind``/``--listen``, or ``--connect``).

    Raises :class:`FinetecError` naming the problem: a malformed endpoint, a port
    outside 1..65535, ``inproc://``, or an ephemeral port / wildcard host to
    connect to.
    """
    binding = option in ("--bind", "--listen")  # the sockets this side binds
    if not isinstance(text, str):
        raise FinetecError(f"{option} {text!r} is not a ZeroMQ endpoint; use {_EXAMPLE}")
    if text.startswith("inproc://"):
        raise FinetecError(f"{option} {text} is in-process only: no other program can reach it; "
                           f"use {_EXAMPLE}")
    if text.startswith("ipc://"):
        path = text[len("ipc://"):]
        if not path or (path == "*" and not binding):
            raise FinetecError(f"{option} {text} names no socket file; use e.g. "
                               "ipc:///tmp/finetec.sock")
        return Endpoint(text, "ipc", path=path)
    m = _TCP_RE.match(text)
    if not m:
        raise FinetecError(f"{option} {text!r} is not a ZeroMQ endpoint; use {_EXAMPLE}")
    host, port_text = m.group("host"), m.group("port")
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise FinetecError(f"{option} {text}: [{host}] is not an IPv6 address; use e.g. "
                               "tcp://[::1]:5557") from None
    if port_text in ("*", "0"):
        if not binding:
            raise FinetecError(f"{option} {text} has no port to connect to; pass the port the "
                               "publisher logged, e.g. tcp://127.0.0.1:5557")
        port = None
    else:
        port = int(port_text)
        if not 1 <= port <= 65535:
            hint = " (or 0 / * for any free port)" if binding else ""
            raise FinetecError(f"{option} {text}: port {port} is outside 1..65535; pick a port "
                               f"in that range{hint}")
    if host == "*" and not binding:
        raise FinetecError(f"{option} {text}: '*' is for binding; connect to the publisher's "
                           "host, e.g. tcp://127.0.0.1:5557")
    return Endpoint(text, "tcp", host=host, port=port)


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` can only be reached from this machine.

    ``ipc://`` and ``inproc://`` are local; ``tcp://`` is local when its host is
    in 127.0.0.0/8, ``::1`` or ``localhost``. ``*``, ``0.0.0.0``, interface
    names and other addresses are not.
    """
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    m = _TCP_RE.match(endpoint)
    if not m:
        return False
    host = m.group("host").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def claim_ipc_path(ep: Endpoint) -> None:
    """Make sure binding ``ep`` (ipc) takes over nobody's socket.

    ZeroMQ unlinks whatever file is at the path before binding, so a second
    publisher would silently steal a live one's path (and delete a regular
    file there). A socket file with a live listener (a connect probe succeeds)
    is refused as in use; a stale one (connection refused) is removed; any
    other file is refused. Abstract (``@name``) and ``*`` paths need no check.
    """
    path = ep.path
    if ep.transport != "ipc" or path.startswith("@") or path == "*":
        return
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise FinetecError(f"cannot check --bind {ep.text} ({exc.strerror}); choose another "
                           "path") from None
    if not stat.S_ISSOCK(mode):
        raise FinetecError(f"--bind {ep.text}: {path} exists and is not a socket; remove it or "
                           "choose another path")
    # A listener that was just closed (ZeroMQ closes sockets on its I/O thread, a
    # moment later) still accepts for a short while: only one that keeps accepting
    # over IPC_PROBES tries is in use.
    for attempt in range(IPC_PROBES):
        if not _accepts(path, ep):
            break
        if attempt + 1 == IPC_PROBES:
            raise FinetecError(f"address {ep.text} is already in use (another finetec-live?); "
                               "stop that process or pass --bind with another path")
        time.sleep(IPC_PROBE_PAUSE_S)
    log.info("removing stale socket file %s", path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as unlink_exc:
        raise FinetecError(f"cannot remove the stale socket file {path} ("
                           f"{unlink_exc.strerror}); remove it or choose another path") from None


def _accepts(path: str, ep: Endpoint) -> bool:
    """Whether something listens on the socket file ``path`` (a connect probe)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise FinetecError(f"cannot check --bind {ep.text} ({exc.strerror}); choose another "
                               "path") from None
        return False
    finally:
        probe.close()
