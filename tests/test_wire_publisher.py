"""open_publisher's CURVE rules and its own authenticator, with real sockets."""

from __future__ import annotations

import threading

import pytest
import zmq

from finetec_live.cli.options import build_parser
from finetec_live.errors import FinetecError
from finetec_live.wire.keys import generate_keys
from finetec_live.wire.messages import LabelMessage
from finetec_live.wire.publisher import open_publisher
from finetec_live.wire.subscriber import open_subscriber


def _label(seq: int) -> LabelMessage:
    return LabelMessage(stream="cam0", seq=seq, t_start=0, t_end=1, label="squat", score=0.5,
                        topk=[["squat", 0.5]], missing=0.0, completed=False,
                        latency_ms={"pose": 1.0, "kernels": 1.0, "model": 1.0, "total": 3.0},
                        model="m")


def _heard(pub, sub, tries: int = 30) -> bool:
    for seq in range(tries):
        pub.send(_label(seq))
        if sub.receive(100) is not None:
            return True
    return False


@pytest.fixture
def keys(tmp_path):
    k = generate_keys(tmp_path / "keys", names=("server", "client", "stranger"))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes(k["client"][0].read_bytes())
    return {"server": k["server"], "client": k["client"], "stranger": k["stranger"],
            "allowed": allowed}


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1]


def test_public_bind_with_curve_needs_an_allow_list_or_the_explicit_flag(keys):
    with pytest.raises(FinetecError, match=r"--curve-clients DIR.*--curve-any-client") as e:
        open_publisher("tcp://0.0.0.0:0", curve_secret=keys["server"][1])
    assert "\n" not in str(e.value)
    with open_publisher("tcp://0.0.0.0:0", curve_secret=keys["server"][1],
                        any_client=True) as pub:
        assert pub.curve and not pub.authenticated
        # encryption only: any key pair that knows the server key may subscribe
        with open_subscriber(f"tcp://127.0.0.1:{_port(pub.endpoint)}",
                             curve_server_key=keys["server"][0]) as sub:
            assert _heard(pub, sub)


@pytest.mark.parametrize(("kw", "match"), [
    ({"curve_clients": "x"}, "--curve-clients needs --curve-secret"),
    ({"any_client": True}, "--curve-any-client needs --curve-secret"),
    ({"curve_clients": "x", "any_client": True, "curve_secret": "s"}, "contradict"),
    ({}, r"--curve-secret FILE.*--insecure")])
def test_inconsistent_security_options_are_refused(kw, match):
    with pytest.raises(FinetecError, match=match):
        open_publisher("tcp://0.0.0.0:0", **kw)


def test_allow_list_admits_listed_clients_only(keys):
    n_threads = threading.active_count()
    with open_publisher("tcp://0.0.0.0:0", curve_secret=keys["server"][1],
                        curve_clients=keys["allowed"]) as pub:
        assert pub.authenticated
        ep = f"tcp://127.0.0.1:{_port(pub.endpoint)}"
        with open_subscriber(ep, curve_server_key=keys["server"][0],
                             curve_secret=keys["client"][1]) as good, \
             open_subscriber(ep, curve_server_key=keys["server"][0],
                             curve_secret=keys["stranger"][1]) as stranger:
            assert _heard(pub, good)
            assert not _heard(pub, stranger, tries=5)
    assert pub.context.closed  # its private context, and the authenticator with it
    assert threading.active_count() == n_threads


def test_two_authenticating_publishers_coexist(keys):
    kw = {"curve_secret": keys["server"][1], "curve_clients": keys["allowed"]}
    with open_publisher("tcp://127.0.0.1:0", **kw) as a, \
         open_publisher("tcp://127.0.0.1:0", **kw) as b:
        for pub in (a, b):
            with open_subscriber(pub.endpoint, curve_server_key=keys["server"][0],
                                 curve_secret=keys["client"][1]) as sub:
                assert _heard(pub, sub)


def test_failed_bind_stops_the_authenticator(keys):
    holder = zmq.Context.instance().socket(zmq.PUB)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    n_threads = threading.active_count()
    try:
        with pytest.raises(FinetecError, match="already in use"):
            open_publisher(f"tcp://127.0.0.1:{port}", curve_secret=keys["server"][1],
                           curve_clients=keys["allowed"])
    finally:
        holder.close(linger=0)
    assert threading.active_count() == n_threads


def test_curve_any_client_is_an_option():
    args = build_parser().parse_args(["--video", "v.mp4", "--curve-any-client"])
    assert args.curve_any_client is True
    assert build_parser().parse_args(["--video", "v.mp4"]).curve_any_client is False
