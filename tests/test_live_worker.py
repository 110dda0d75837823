"""The inference step of the live command on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live import Recognizer
from finetec_live.inference.window import Window
from finetec_live.live.worker import classify_window


@pytest.fixture(scope="module")
def rec():
    return Recognizer.from_checkpoint("penn", device="cpu")


def _window(missing: slice) -> Window:
    T = 75
    t = np.arange(T) / 30.0
    rng = np.random.default_rng(0)
    base = rng.normal(200, 40, (13, 2))
    pos = (base[None] + 20 * np.sin(2 * np.pi * t)[:, None, None]).astype(np.float32)
    fv = np.ones(T, bool)
    fv[missing] = False
    pos[~fv] = 0.0
    return Window(pos, fv, fv[:, None] & np.ones((T, 13), bool), t, t_start=0.0,
                  t_end=2.5, seq=3, layout="penn13")


def test_with_a_display_the_network_runs_once_per_window(rec):
    calls = []
    hook = rec.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        window = _window(slice(20, 50))
        got = classify_window(rec, window, "cam", want_completion=True)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert got.completed_positions is not None and got.completed_positions.shape == (75, 13, 2)
    ts = window.timestamps[None]
    probs, done = rec.classify_and_complete(window.positions[None], window.frame_valid[None],
                                            window.joint_valid[None], ts)
    np.testing.assert_allclose(got.probs, probs[0], atol=1e-5)
    np.testing.assert_allclose(got.completed_positions, done[0], atol=1e-3)
    assert got.message.completed and got.message.latency_ms["total"] == 0.0  # set at the send


def test_without_missing_frames_no_completion_is_mapped(rec):
    got = classify_window(rec, _window(slice(0, 0)), "cam", want_completion=True)
    assert got.completed_positions is None and not got.message.completed


def _still(window: Window) -> Window:
    pos = np.repeat(window.positions[:1], window.num_frames, axis=0)
    fv = np.ones(window.num_frames, bool)
    return Window(pos, fv, window.joint_valid | True, window.timestamps, t_start=0.0,
                  t_end=2.5, seq=4, layout="penn13")


def test_the_message_carries_the_open_set_decision(rec):
    from finetec_live.inference.openset import OpenSet

    moving, still = _window(slice(0, 0)), _still(_window(slice(0, 0)))
    saved = rec.open_set, rec.open_set_enabled
    try:
        rec.open_set_enabled = False  # the closed-set answer: the top class
        closed = classify_window(rec, moving, "cam").message
        assert closed.label == closed.topk[0][0] and closed.score == closed.topk[0][1]
        rec.open_set, rec.open_set_enabled = OpenSet(unknown_below=1.0, idle_floor=0.002), True
        got = classify_window(rec, moving, "cam")
        m = got.message
        assert (m.label, got.kind) == ("unknown", "unknown")
        assert m.score == pytest.approx(1.0 - m.topk[0][1], abs=1e-6)
        assert m.topk == closed.topk  # the ranking of the classes is the classifier's
        got = classify_window(rec, still, "cam")
        assert (got.message.label, got.kind, got.message.score) == ("idle", "idle", 1.0)
        rec.open_set_enabled = False  # --no-open-set
        assert classify_window(rec, still, "cam").message.label in rec.class_names
    finally:
        rec.open_set, rec.open_set_enabled = saved
