"""finetec-serve: real Penn windows from many streams, batched; malformed messages counted;
labels as the recognizer gives them; stale windows dropped and counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from _serving import wait_serving

from finetec_live.serve.intake import Intake
from finetec_live.serve.simulate import penn_windows, send_streams
from finetec_live.wire.messages import LabelMessage, StatusMessage


def _window(seq: int = 0):
    from finetec_live.inference.window import Window

    return Window(np.zeros((8, 13, 2)), np.ones(8, bool), np.ones((8, 13), bool),
                  np.arange(8) / 30, seq=seq, layout="penn13")


def test_intake_batches_and_drops_stale_and_overflow_counted():
    q = Intake(capacity=3, max_age_s=0.05)
    for k in range(5):
        q.put("a" if k % 2 else "b", _window(k))
    assert sum(q.dropped.values()) == 2 and len(q) == 3  # the two oldest, over capacity
    batch = q.take(max_batch=2, max_wait_s=0.0)
    assert [a.window.seq for a in batch] == [2, 3]
    time.sleep(0.08)
    assert q.take(max_batch=8, max_wait_s=0.0) == [] and sum(q.dropped.values()) == 3
    t0 = time.perf_counter()
    threading.Timer(0.03, lambda: q.put("a", _window(9))).start()
    got = q.take(max_batch=8, max_wait_s=0.01, timeout=1.0)
    assert [a.window.seq for a in got] == [9] and time.perf_counter() - t0 < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_server_labels_many_streams_like_the_recognizer(tmp_path, data_root, backend,
                                                        monkeypatch):
    from finetec_live.inference.recognizer import Recognizer, bf16_is_native

    monkeypatch.setenv("FINETEC_CACHE", str(tmp_path / "cache"))  # the export made at start

    windows, _ = penn_windows(48, root=data_root)
    ctx = zmq.Context.instance()
    stats = tmp_path / "serve.json"
    port_in = 25000 + (os.getpid() + (backend != "torch")) % 2000
    port_out = port_in + 2000
    server = subprocess.Popen([sys.executable, "-m", "finetec_live.cli.serve", "--listen",
                               f"tcp://127.0.0.1:{port_in}", "--bind",
                               f"tcp://127.0.0.1:{port_out}", "--max-seconds", "25",
                               "--stats-json", str(stats), "--backend", backend,
                               "--smooth", "1"],  # each window's own label, to compare
                              stderr=subprocess.PIPE, text=True)
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{port_out}")
    sub.setsockopt_string(zmq.SUBSCRIBE, "")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port_in}")
    labels, status = {}, {}

    def listen():
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        while server.poll() is None or poller.poll(200):
            if poller.poll(200):
                topic, payload = sub.recv_multipart()
                if topic.startswith(b"label."):
                    m = LabelMessage.unpack(payload)
                    labels[(m.stream, m.seq)] = m
                elif topic.startswith(b"status."):
                    m = StatusMessage.unpack(payload)
                    status[m.stream] = m

    wait_serving(server)
    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    sent = send_streams(push, windows, streams=8, rate_hz=2.0, seconds=5.0, malformed_every=7)
    server.wait(timeout=60)
    reader.join(timeout=10)
    push.close(0)
    sub.close(0)
    assert server.returncode == 0
    s = json.loads(stats.read_text())
    assert s["received"] == len(sent) and sum(s["malformed"].values()) >= len(sent) // 7 - 1
    assert s["published"] + s["dropped"] + s["skipped"] == s["received"]
    assert s["smoothed_windows"] == 1 and s["backend"] == backend
    # the default --precision auto: bf16 where the CPU has bf16 matrix units (the labels
    # below are compared with the recognizer's fp32 ones)
    import torch  # the server's --device auto: a GPU if there is one, kept in fp32 there

    on_cpu = not torch.cuda.is_available()
    assert s["precision"] == ("bf16" if backend == "torch" and on_cpu and bf16_is_native("cpu")
                              else "fp32")
    assert len(labels) >= 0.95 * len(sent)
    rec = Recognizer.from_checkpoint()
    keys = sorted(labels)
    idx = [sent[k][1] for k in keys]
    pos = [windows[i] for i in idx]
    same = 0
    for k, w in zip(keys, pos, strict=True):  # the label the recognizer gives the window
        want = rec.label(w.positions[None], w.frame_valid[None], w.joint_valid[None],
                         (w.timestamps - w.timestamps[0])[None])[0]
        same += labels[k].label == want
    assert same >= 0.98 * len(keys)
    assert {m.stream for m in status.values()} == {k[0] for k in sent}
    assert all(m.extra["malformed_messages"] >= 1 for m in status.values())
    if backend == "onnxruntime":
        assert list((tmp_path / "cache" / "onnx").glob(f"{rec.model_id}.onnx"))


@pytest.mark.slow
def test_edge_mode_sends_windows_the_server_labels(tmp_path):
    """finetec-live --serve: capture, pose and windows here without torch; the server's
    labels are the ones finetec-live gives the same clip by itself."""
    from finetec_live.live.sources import DEMO_VIDEO

    port_in = 29000 + os.getpid() % 500
    port_out = port_in + 500
    server = subprocess.Popen([sys.executable, "-m", "finetec_live.cli.serve", "--listen",
                               f"tcp://127.0.0.1:{port_in}", "--bind",
                               f"tcp://127.0.0.1:{port_out}", "--max-seconds", "40",
                               # a loaded machine may hold a window past the default 0.5 s
                               # (it would be dropped and counted); here every one is kept
                               "--max-age-ms", "10000",
                               # finetec-live runs fp32: the same precision, the same labels
                               "--precision", "fp32"],
                              stderr=subprocess.PIPE, text=True)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{port_out}")
    sub.setsockopt_string(zmq.SUBSCRIBE, "label.")
    wait_serving(server)
    edge = subprocess.run(
        [sys.executable, "-c", "import sys; from finetec_live.cli.live import main; "
         "rc = main(sys.argv[1:]); assert 'torch' not in sys.modules, 'torch imported'; "
         "sys.exit(rc)", "--video", str(DEMO_VIDEO), "--fast", "--no-display", "--serve",
         f"tcp://127.0.0.1:{port_in}", "--stats-json", str(tmp_path / "edge.json")],
        capture_output=True, text=True, timeout=120)
    assert edge.returncode == 0, edge.stderr
    got = []
    while sub.poll(3000):
        got.append(LabelMessage.unpack(sub.recv_multipart()[1]))
    server.terminate()
    server.wait(timeout=30)
    sub.close(0)
    s = json.loads((tmp_path / "edge.json").read_text())
    assert s["published"] == len(got) > 0 and s["dropped_windows"] == 0
    alone = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--video",
                            str(DEMO_VIDEO), "--fast", "--no-display", "--jsonl", "-",
                            "--bind", "tcp://127.0.0.1:*", "--log-level", "WARNING"],
                           capture_output=True, text=True, timeout=120)
    want = [json.loads(line) for line in alone.stdout.splitlines()]
    assert [(m.seq, m.label) for m in sorted(got, key=lambda m: m.seq)] == [
        (m["seq"], m["label"]) for m in want]


def test_windows_of_many_lengths_are_classified_together_as_one_by_one(data_root):
    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.live.worker import classify_window, classify_windows

    rec = Recognizer.from_checkpoint()
    windows, _ = penn_windows(24, root=data_root)
    assert len({w.num_frames for w in windows}) > 3  # several lengths in one batch
    together = classify_windows(rec, windows, [f"s{i}" for i in range(24)])
    for i, (w, got) in enumerate(zip(windows, together, strict=True)):
        alone = classify_window(rec, w, f"s{i}")
        assert got.message.stream == f"s{i}" and got.message.label == alone.message.label
        np.testing.assert_allclose(got.probs, alone.probs, atol=1e-5)


@pytest.mark.parametrize("argv, says", [
    (["--max-batch", "0"], "--max-batch"), (["--max-wait-ms", "5000"], "--max-wait-ms"),
    (["--listen", "tcp://0.0.0.0:5999"], "--listen"), (["--listen", "tcp://host:99999"], "port"),
    (["--max-age-ms", "-1"], "--max-age-ms"), (["--onnx", "penn.onnx"], "--backend onnxruntime"),
    (["--backend", "tensorrt"], "--backend"), (["--precision", "fp16"], "--precision"),
    (["--backend", "onnxruntime", "--precision", "bf16"], "--precision bf16")])
def test_serve_refuses_bad_options_in_one_line(argv, says):
    out = subprocess.run([sys.executable, "-m", "finetec_live.cli.serve", *argv],
                         capture_output=True, text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and says in lines[0], out.stderr


def test_listen_with_an_allow_list_takes_only_those_producers(tmp_path):
    """CURVE on --listen with --curve-clients: a producer whose key is in the folder gets
    through, another one's windows never arrive."""
    import shutil

    from finetec_live.serve.server import open_puller
    from finetec_live.wire.keys import generate_keys, load_secret_key
    from finetec_live.wire.windows import pack_window, unpack_window

    generate_keys(tmp_path / "keys", ("server", "good"))
    generate_keys(tmp_path / "other", ("bad",))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(tmp_path / "keys" / "good.key", allowed / "good.key")
    ctx = zmq.Context()
    pull, auth = open_puller(ctx, "tcp://127.0.0.1:*", curve_secret=tmp_path / "keys" /
                             "server.key_secret", curve_clients=allowed)
    endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    server_public = load_secret_key(tmp_path / "keys" / "server.key_secret")[0]
    try:
        for who, secret in (("good", tmp_path / "keys" / "good.key_secret"),
                            ("bad", tmp_path / "other" / "bad.key_secret")):
            push = ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.curve_publickey, push.curve_secretkey = load_secret_key(secret)
            push.curve_serverkey = server_public
            push.connect(endpoint)
            push.send(pack_window(_window(7), who), zmq.NOBLOCK) if push.poll(2000,
                                                                              zmq.POLLOUT) else None
            got = pull.poll(2000)
            if who == "good":
                assert got and unpack_window(pull.recv())[0] == "good"
            else:
                assert not got  # the handshake was refused: nothing arrives
            push.close(0)
    finally:
        pull.close(0)
        auth.stop()
        ctx.term()


def test_malformed_messages_are_counted_by_field_not_by_their_text():
    import msgpack

    from finetec_live.serve.server import Server

    server = Server(None, None, None)
    for k in range(200):  # each one names another layout: the counter must not grow
        server._accept(msgpack.packb({"v": 1, "stream": "cam", "layout": f"x{k}"}), 0.0)
        server._accept(bytes([k, 0xC1, k]), 0.0)
    assert sum(server.malformed.values()) == 400 and len(server.malformed) <= 3
    assert len(server.intake) == 0
