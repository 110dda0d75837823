"""Endpoints: parsing and refusals, ephemeral ports, IPv6, and ipc paths held by a
live publisher, with real sockets."""

from __future__ import annotations

import socket

import pytest
import zmq

from finetec_live.errors import FinetecError
from finetec_live.wire.endpoints import parse_endpoint
from finetec_live.wire.messages import MAX_MESSAGE_BYTES, LabelMessage
from finetec_live.wire.publisher import open_publisher
from finetec_live.wire.subscriber import open_subscriber


def _label(seq: int) -> LabelMessage:
    return LabelMessage(stream="cam0", seq=seq, t_start=0, t_end=1, label="squat", score=0.5,
                        topk=[["squat", 0.5]], missing=0.0, completed=False,
                        latency_ms={"pose": 1.0, "kernels": 1.0, "model": 1.0, "total": 3.0},
                        model="m")


def _hears(pub, sub, tries: int = 60) -> int:
    """Publish until the subscriber decodes a label; its seq."""
    for seq in range(tries):
        pub.send(_label(seq))
        got = sub.receive(100)
        if got is not None:
            return got.message.seq
    raise AssertionError(f"nothing heard from {pub.endpoint}")


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536",
                                      "tcp://[::1]:70000"])
def test_port_outside_range_is_refused(endpoint):
    with pytest.raises(FinetecError, match=r"outside 1\.\.65535"):
        open_publisher(endpoint)
    with pytest.raises(FinetecError, match=r"outside 1\.\.65535"):
        open_subscriber(endpoint)


@pytest.mark.parametrize("option", ["--bind", "--connect"])
def test_inproc_is_refused(option):
    with pytest.raises(FinetecError, match="in-process only"):
        parse_endpoint("inproc://labels", option)


@pytest.mark.parametrize(("text", "option", "match"), [
    ("tcp://127.0.0.1:*", "--connect", "no port"), ("tcp://127.0.0.1:0", "--connect", "no port"),
    ("tcp://*:5557", "--connect", "for binding"), ("tcp://[nothost]:5557", "--bind", "IPv6"),
    ("ipc://", "--bind", "no socket file"), ("localhost:5557", "--bind", "not a ZeroMQ"),
    ("tcp://127.0.0.1:", "--bind", "not a ZeroMQ")])
def test_malformed_endpoints_are_refused(text, option, match):
    with pytest.raises(FinetecError, match=match):
        parse_endpoint(text, option)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:0", "tcp://127.0.0.1:*"])
def test_ephemeral_port_is_resolved(endpoint):
    with open_publisher(endpoint) as pub:
        host, port = pub.endpoint.rsplit(":", 1)
        assert host == "tcp://127.0.0.1" and 1 <= int(port) <= 65535
        assert pub.requested == endpoint
        with open_subscriber(pub.endpoint) as sub:
            assert _hears(pub, sub) >= 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_endpoint():
    with open_publisher("tcp://[::1]:0") as pub:
        assert pub.endpoint.startswith("tcp://[::1]:")
        with open_subscriber(pub.endpoint) as sub:
            assert _hears(pub, sub) >= 0


def test_sockets_cap_the_message_size():
    with open_publisher("tcp://127.0.0.1:0") as pub, open_subscriber(pub.endpoint) as sub:
        assert pub.socket.getsockopt(zmq.MAXMSGSIZE) == MAX_MESSAGE_BYTES
        assert sub.socket.getsockopt(zmq.MAXMSGSIZE) == MAX_MESSAGE_BYTES


def test_ipc_path_held_by_a_live_publisher_is_in_use(tmp_path):
    path = tmp_path / "labels.sock"
    with open_publisher(f"ipc://{path}") as first:
        with pytest.raises(FinetecError, match="already in use"):
            open_publisher(f"ipc://{path}")
        # the first publisher still owns its path: a subscriber there hears it
        with open_subscriber(f"ipc://{path}") as sub:
            assert _hears(first, sub) >= 0


def test_stale_ipc_socket_file_is_replaced(tmp_path):
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # a socket file nobody listens on, as a killed process leaves
    dead.close()
    assert path.is_socket()
    with open_publisher(f"ipc://{path}") as pub, open_subscriber(f"ipc://{path}") as sub:
        assert _hears(pub, sub) >= 0


def test_ipc_path_over_a_regular_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(FinetecError, match="not a socket"):
        open_publisher(f"ipc://{path}")
    assert path.read_text() == "keep me"  # ZeroMQ alone would have unlinked it


def test_ipc_path_left_by_a_closed_publisher_is_reused(tmp_path):
    path = tmp_path / "again.sock"
    open_publisher(f"ipc://{path}").close()  # libzmq leaves the socket file behind
    with open_publisher(f"ipc://{path}") as pub, open_subscriber(f"ipc://{path}") as sub:
        assert pub.endpoint == f"ipc://{path}" and _hears(pub, sub) >= 0


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 on this machine")
def test_wildcard_bind_listens_on_ipv4_and_ipv6():
    with open_publisher("tcp://*:0", insecure=True) as pub:
        port = pub.endpoint.rsplit(":", 1)[1]
        for ep in (f"tcp://127.0.0.1:{port}", f"tcp://[::1]:{port}"):
            with open_subscriber(ep) as sub:
                assert _hears(pub, sub) >= 0, ep
