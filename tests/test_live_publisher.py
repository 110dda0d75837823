"""Messages and the ZeroMQ publisher, with a real SUB socket on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import msgpack
import pytest
import zmq
import zmq.auth

from finetec_live.errors import FinetecError
from finetec_live.wire.endpoints import is_loopback
from finetec_live.wire.keys import generate_keys
from finetec_live.wire.messages import LABEL_KEYS, LabelMessage, StatusMessage
from finetec_live.wire.publisher import Publisher, open_publisher


def _label(seq: int = 0, **kw) -> LabelMessage:
    base = dict(stream="cam0", seq=seq, t_start=1_000_000_000, t_end=3_000_000_000,
                label="squat", score=0.8, topk=[["squat", 0.8], ["pushup", 0.15]],
                missing=0.25, completed=True,
                latency_ms={"pose": 20.0, "kernels": 1.0, "model": 5.0, "total": 30.0},
                model="penn-abc123", wall_ns=time.time_ns())
    base.update(kw)
    return LabelMessage(**base)


def _sub(endpoint: str, topic: str = "", ctx=None, **curve) -> zmq.Socket:
    ctx = ctx or zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    for k, v in curve.items():
        setattr(s, k, v)
    s.setsockopt_string(zmq.SUBSCRIBE, topic)
    s.connect(endpoint)
    return s


def _send_until_received(pub: Publisher, sub: zmq.Socket, msg, tries: int = 50):
    """PUB/SUB joins asynchronously: resend until the subscriber hears one."""
    for _ in range(tries):
        pub.send(msg)
        try:
            sub.setsockopt(zmq.RCVTIMEO, 100)
            return sub.recv_multipart()
        except zmq.Again:
            continue
    raise AssertionError("subscriber never received a message")


def test_label_payload_has_exactly_the_schema_keys_and_plain_types():
    d = msgpack.unpackb(_label().pack(), raw=False)
    assert tuple(d) == LABEL_KEYS
    assert set(d["latency_ms"]) == {"pose", "kernels", "model", "total"}
    assert isinstance(d["t_start"], int) and isinstance(d["completed"], bool)
    assert d["topk"][0] == ["squat", 0.8]
    assert LabelMessage.unpack(_label().pack()).to_dict()["label"] == "squat"


@pytest.mark.parametrize(("field", "value", "match"), [
    ("score", 1.5, "probability"), ("missing", -0.1, "fraction"), ("t_end", 0, "before"),
    ("topk", [], "topk"), ("stream", "a b", "stream"), ("seq", -1, "seq")])
def test_label_message_checks(field, value, match):
    with pytest.raises(ValueError, match=match):
        _label(**{field: value})


def test_publish_and_decode_on_loopback():
    with open_publisher("tcp://127.0.0.1:*") as pub:
        sub = _sub(pub.endpoint, "label.")
        topic, payload = _send_until_received(pub, sub, _label(0))
        assert topic == b"label.cam0"
        got = msgpack.unpackb(payload, raw=False)
        assert got["label"] == "squat" and got["missing"] == 0.25
        # status goes on its own topic, which this subscriber did not ask for
        pub.send(StatusMessage("cam0", 30.0, 100, 3, 10, 9, 1, 0, 3.3))
        pub.send(_label(1))
        sub.setsockopt(zmq.RCVTIMEO, 2000)
        topic, payload = sub.recv_multipart()
        while msgpack.unpackb(payload, raw=False)["seq"] == 0:  # resends of seq 0
            topic, payload = sub.recv_multipart()
        assert topic == b"label.cam0" and msgpack.unpackb(payload)["seq"] == 1
        sub.close()


def test_loopback_detection():
    assert is_loopback("tcp://127.0.0.1:5557") and is_loopback("tcp://localhost:1")
    assert is_loopback("tcp://[::1]:5557") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://*:5557") and not is_loopback("tcp://0.0.0.0:5557")
    assert not is_loopback("tcp://192.168.1.2:5557") and not is_loopback("tcp://eth0:5557")


def test_non_loopback_needs_curve_or_insecure():
    with pytest.raises(FinetecError, match="--curve-secret"):
        open_publisher("tcp://0.0.0.0:*")


def test_address_in_use_is_a_user_error():
    with open_publisher("tcp://127.0.0.1:*") as first:
        with pytest.raises(FinetecError, match="already in use"):
            open_publisher(first.endpoint)


def test_curve_encrypted_stream(tmp_path):
    keys = generate_keys(tmp_path)
    server_pub, _ = zmq.auth.load_certificate(str(keys["server"][0]))
    client_pub, client_sec = zmq.auth.load_certificate(str(keys["client"][1]))
    with pytest.raises(FinetecError, match="already exist"):
        generate_keys(tmp_path)
    with open_publisher("tcp://127.0.0.1:*", curve_secret=keys["server"][1]) as pub:
        good = _sub(pub.endpoint, "label.", curve_serverkey=server_pub,
                    curve_publickey=client_pub, curve_secretkey=client_sec)
        _, payload = _send_until_received(pub, good, _label(0))
        assert msgpack.unpackb(payload, raw=False)["label"] == "squat"
        # a plain subscriber cannot join a CURVE publisher
        plain = _sub(pub.endpoint, "label.")
        plain.setsockopt(zmq.RCVTIMEO, 300)
        for _ in range(3):
            pub.send(_label(1))
        with pytest.raises(zmq.Again):
            plain.recv_multipart()
        good.close()
        plain.close()


SUBSCRIBE = [sys.executable, "-m", "finetec_live.cli.subscribe"]


def test_subscriber_command_prints_json_lines():
    with open_publisher("tcp://127.0.0.1:*") as pub:
        ep = pub.endpoint
        proc = subprocess.Popen([*SUBSCRIBE, "--connect", ep,
                                 "--json", "--count", "2", "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        seq = 0
        while proc.poll() is None and time.time() < deadline:
            pub.send(_label(seq))
            seq += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["topic"] == "label.cam0" and first["label"] == "squat"
    assert json.loads(lines[1])["seq"] == first["seq"] + 1


def test_subscriber_command_bad_endpoint_is_one_line():
    r = subprocess.run([*SUBSCRIBE, "--connect", "nonsense"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_key_files_are_read_or_refused_in_one_line(tmp_path):
    import zmq.auth

    from finetec_live.errors import FinetecError
    from finetec_live.wire.keys import load_public_key, load_secret_key

    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "srv")
    public, secret = load_secret_key(secret_file)
    assert load_public_key(public_file) == public and len(secret) == 40
    with pytest.raises(FinetecError, match=r"holds no secret key.*key_secret"):
        load_secret_key(public_file)
    with pytest.raises(FinetecError, match="cannot read CURVE key file"):
        load_public_key(tmp_path / "absent.key")
