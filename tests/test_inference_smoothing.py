"""Per-track smoothing of the class evidence: the mean of a person's last windows, on
its own and inside the live path's inference step (the shipped model)."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live import Recognizer
from finetec_live.errors import FinetecError
from finetec_live.inference.smoothing import Smoother
from finetec_live.inference.window import Window
from finetec_live.live.worker import classify_window, classify_windows


def _p(*xs):
    a = np.asarray(xs, np.float32)
    return a / a.sum()


def test_the_mean_of_the_last_windows_of_each_track():
    s = Smoother(3, hop_s=0.5)
    seen = [_p(1, 0, 0), _p(0, 1, 0), _p(0, 0, 1), _p(1, 1, 0)]
    got = [s.push("a", 0.5 * i, p)[0] for i, p in enumerate(seen)]
    np.testing.assert_allclose(got[0], seen[0])
    np.testing.assert_allclose(got[1], (seen[0] + seen[1]) / 2, atol=1e-7)
    np.testing.assert_allclose(got[2], np.full(3, 1 / 3), atol=1e-7)
    np.testing.assert_allclose(got[3], (seen[1] + seen[2] + seen[3]) / 3, atol=1e-7)
    for g in got:
        assert g.dtype == np.float32 and g.sum() == pytest.approx(1.0, abs=1e-6)
    # another track does not mix in
    np.testing.assert_allclose(s.push("b", 1.5, _p(0, 0, 1))[0], _p(0, 0, 1))
    assert len(s) == 2


def test_one_window_passes_through_and_bad_settings_are_refused():
    s = Smoother(1, 0.5)
    p, f = _p(3, 1), np.ones(4)
    got, feats = s.push("a", 0.0, p, f)
    np.testing.assert_array_equal(got, p)
    assert feats is f and len(s) == 0 and s.held("a") == -1  # no history, nothing held
    for bad in (0, -2, 2.5, True, "3"):
        with pytest.raises(FinetecError, match="whole number of windows"):
            Smoother(bad, 0.5)
    for hop in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(FinetecError, match="hop"):
            Smoother(3, hop)


def test_a_gap_a_step_back_in_time_and_a_reset_forget_the_history():
    s = Smoother(4, hop_s=0.5)  # span 1.75 s
    s.push("a", 0.0, _p(1, 0))
    s.push("a", 0.5, _p(1, 0))
    # 2 s later: both old windows end more than 1.75 s before this one
    np.testing.assert_allclose(s.push("a", 2.5, _p(0, 1))[0], _p(0, 1))
    # one of them (at 0.5 s) would still be in: ends 1.75 s before
    s2 = Smoother(4, hop_s=0.5)
    s2.push("a", 0.0, _p(1, 0))
    s2.push("a", 0.5, _p(1, 0))
    np.testing.assert_allclose(s2.push("a", 2.25, _p(0, 1))[0], _p(1, 1), atol=1e-7)
    # time going back (a new source, a replayed file) starts afresh, counted
    np.testing.assert_allclose(s.push("a", 0.0, _p(1, 0))[0], _p(1, 0))
    assert s.restarted == 1
    s.reset("a")
    np.testing.assert_allclose(s.push("a", 0.5, _p(0, 1))[0], _p(0, 1))
    s.reset("nobody")  # nothing to forget: no error


def test_features_are_averaged_when_every_window_has_them():
    s = Smoother(2, 0.5)
    _, f = s.push("a", 0.0, _p(1, 1), np.array([1.0, 0.0]))
    np.testing.assert_allclose(f, [1.0, 0.0])
    _, f = s.push("a", 0.5, _p(1, 1), np.array([0.0, 1.0]))
    np.testing.assert_allclose(f, [0.5, 0.5])
    _, f = s.push("a", 1.0, _p(1, 1), None)
    assert f is None


def test_tracks_beyond_the_limit_forget_the_least_recently_used():
    s = Smoother(3, 0.5, max_tracks=2)
    s.push("a", 0.0, _p(1, 0))
    s.push("b", 0.0, _p(1, 0))
    s.push("a", 0.5, _p(1, 0))  # a is now the most recent
    s.push("c", 0.0, _p(0, 1))  # b goes
    assert s.evicted == 1 and len(s) == 2
    np.testing.assert_allclose(s.push("a", 1.0, _p(0, 1))[0], _p(2, 1), atol=1e-7)  # kept
    np.testing.assert_allclose(s.push("b", 0.5, _p(0, 1))[0], _p(0, 1))  # b starts afresh
    assert s.evicted == 2  # c made room for it


@pytest.fixture(scope="module")
def rec():
    return Recognizer.from_checkpoint("penn", device="cpu")


def _window(seed: int, t_end: float, person: int = 0, still: bool = False) -> Window:
    T = 75
    t = np.arange(T) / 30.0
    rng = np.random.default_rng(seed)
    base = rng.normal(200, 40, (13, 2))
    sway = 0.0 if still else 25 * np.sin(2 * np.pi * (0.5 + 0.4 * seed) * t)[:, None, None]
    pos = (base[None] + sway).astype(np.float32) * np.ones((T, 13, 2), np.float32)
    fv = np.ones(T, bool)
    return Window(pos, fv, np.ones((T, 13), bool), t + t_end - 2.5, t_start=t_end - 2.5,
                  t_end=t_end, seq=seed, layout="penn13", person=person)


def test_the_live_step_decides_on_the_mean_of_the_persons_last_windows(rec):
    saved = rec.open_set_enabled
    rec.open_set_enabled = False
    try:
        windows = [_window(i, 2.5 + 0.5 * i) for i in range(4)]
        raw = [classify_window(rec, w, "cam").probs for w in windows]
        s = Smoother(3, 0.5)
        got = [classify_window(rec, w, "cam", smoother=s) for w in windows]
        for i, g in enumerate(got):
            want = np.mean(raw[max(0, i - 2): i + 1], axis=0)
            np.testing.assert_allclose(g.probs, want / want.sum(), atol=1e-5)
            m = g.message
            assert m.label == rec.class_names[int(want.argmax())]
            assert m.score == pytest.approx(float(want.max() / want.sum()), abs=1e-5)
            assert m.topk[0][0] == m.label
        assert not np.allclose(raw[3], got[3].probs, atol=1e-3)
        # one batch of several people and streams: each track its own, in order
        s1, s2 = Smoother(3, 0.5), Smoother(3, 0.5)
        mixed = [_window(0, 2.5, 0), _window(1, 2.5, 1), _window(2, 3.0, 0),
                 _window(3, 3.0, 1), _window(4, 3.5, 0)]
        streams = ["cam", "cam", "cam", "cam", "other"]
        together = classify_windows(rec, mixed, streams, smoother=s1)
        alone = [classify_window(rec, w, st, smoother=s2) for w, st in zip(mixed, streams,
                                                                        strict=True)]
        for a, b in zip(together, alone, strict=True):
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
        # stream "other" has no history: its window alone
        np.testing.assert_allclose(together[4].probs, classify_window(rec, mixed[4], "x").probs,
                                   atol=1e-5)
    finally:
        rec.open_set_enabled = saved


def test_an_idle_window_clears_the_persons_history(rec):
    from finetec_live.inference.openset import OpenSet

    saved = rec.open_set, rec.open_set_enabled
    rec.open_set, rec.open_set_enabled = OpenSet(unknown_below=0.0, idle_floor=0.002), True
    try:
        s = Smoother(4, 0.5)
        classify_window(rec, _window(0, 2.5), "cam", smoother=s)
        assert len(s) == 1
        got = classify_window(rec, _window(1, 3.0, still=True), "cam", smoother=s)
        assert got.kind == "idle" and len(s) == 0
        after = classify_window(rec, _window(2, 3.5), "cam", smoother=s)
        alone = classify_window(rec, _window(2, 3.5), "cam")
        np.testing.assert_allclose(after.probs, alone.probs, atol=1e-6)
    finally:
        rec.open_set, rec.open_set_enabled = saved


def test_the_history_is_a_copy_of_what_was_pushed():
    s = Smoother(2, 0.5)
    batch = np.array([_p(1, 0), _p(0, 1)])
    s.push("a", 0.0, batch[0])
    batch[0] = _p(0, 1)  # the caller reuses its array
    np.testing.assert_allclose(s.push("a", 0.5, batch[1])[0], _p(1, 1), atol=1e-7)


def test_the_delay_after_a_change_of_action_grows_with_the_history():
    """change_delays: A's windows then B's; the windows until B's class is the label."""
    from types import SimpleNamespace

    from finetec_live.learning.fusion import LengthOutput, change_delays

    rec = SimpleNamespace(class_names=["a", "b"], hop_seconds=0.5, open_set=None,
                          open_set_enabled=False)

    def out(p):
        return {1.0: LengthOutput(_p(*p), np.zeros(0), None, 0.0)}

    a = [out((0.9, 0.1))] * 6
    b = [out((0.2, 0.8))] * 6
    labelled = [("A", "a", a), ("B", "b", b)]
    one, four = change_delays(rec, labelled, 1), change_delays(rec, labelled, 4)
    assert one == [0, 0]  # each window alone: the first window of the other video
    # four windows: the new class wins once the mean favours it; a -> b needs three b
    # windows of four (two give b 0.45), b -> a two (a 0.55): a's windows are surer
    assert four == [2, 1]
    assert change_delays(rec, [("A", "a", a), ("A2", "a", a)], 4) == []  # one class only
    never = [("A", "a", a), ("B", "b", [out((0.6, 0.4))] * 3)]
    assert change_delays(rec, never, 4)[0] is None  # B's own windows never say b


def test_a_track_holds_its_last_class_until_a_gap_a_restart_or_a_reset():
    for k in (2, 4):
        s = Smoother(k, hop_s=0.5)
        assert s.held("a") == -1  # nobody yet
        s.push("a", 0.0, _p(1, 0))
        assert s.held("a") == -1  # a new track holds nothing
        s.hold("a", 0)
        s.push("a", 0.5, _p(1, 0))
        assert s.held("a") == 0  # the previous window, one hop back
        s.hold("a", 1)
        s.push("a", 1.2, _p(1, 0))  # 0.7 s: within a hop and a half
        assert s.held("a") == 1
        s.push("a", 2.0, _p(1, 0))  # 0.8 s later: a window was skipped
        assert s.held("a") == -1
        s.hold("a", 0)
        s.push("a", 1.0, _p(1, 0))  # time went back: a new track
        assert s.held("a") == -1
        s.hold("a", 0)
        s.reset("a")
        s.push("a", 1.5, _p(1, 0))
        assert s.held("a") == -1 and s.held("b") == -1
        s.hold("nobody", 0)  # no track: nothing recorded, no error
        assert s.held("nobody") == -1


def test_the_live_step_continues_a_held_class_on_less_evidence(rec):
    """Through classify_window with the shipped model: a window whose top probability
    lies between the hold and unknown thresholds is unknown on its own, and keeps its
    class when its track's previous window had that class."""
    from dataclasses import replace

    from finetec_live.inference.openset import OpenSet

    saved = rec.open_set, rec.open_set_enabled
    try:
        rec.open_set_enabled = True
        w = [_window(1, 2.5 + 0.5 * i) for i in range(4)]
        rec.open_set = OpenSet(unknown_below=0.0, idle_floor=0.0)
        first = classify_window(rec, w[0], "cam")
        p = float(first.probs.max())
        assert first.kind == "class"
        strict = OpenSet(unknown_below=min(1.0, p + 0.01), idle_floor=0.0)
        rec.open_set = strict
        assert classify_window(rec, w[1], "cam").kind == "unknown"  # alone: unknown
        s = Smoother(2, 0.5)  # (the windows are alike: their mean is each one's)
        rec.open_set = OpenSet(unknown_below=0.0, idle_floor=0.0)
        classify_window(rec, w[0], "cam", smoother=s)  # labelled: its class is held
        rec.open_set = replace(strict, hold_below=max(0.0, p - 0.05))
        kept = classify_window(rec, w[1], "cam", smoother=s)
        assert kept.kind == "class" and kept.message.label == first.message.label
        assert classify_window(rec, w[2], "cam", smoother=s).kind == "class"  # and on
        # an unknown window (below even the hold) ends the hold: the next window, sure
        # enough to continue the class but not to start it, is unknown too
        s3 = Smoother(2, 0.5)
        rec.open_set = OpenSet(unknown_below=0.0, idle_floor=0.0)
        classify_window(rec, w[0], "cam", smoother=s3)
        rec.open_set = replace(strict, hold_below=min(p + 0.005, strict.unknown_below))
        assert classify_window(rec, w[1], "cam", smoother=s3).kind == "unknown"
        rec.open_set = replace(strict, hold_below=max(0.0, p - 0.05))
        assert classify_window(rec, w[2], "cam", smoother=s3).kind == "unknown"
        rec.open_set = replace(strict, hold_below=max(0.0, p - 0.05))
        # after a gap of two hops the class has to start again: unknown
        late = replace(w[3], t_end=w[3].t_end + 1.0, t_start=w[3].t_start + 1.0,
                       timestamps=w[3].timestamps + 1.0)
        assert classify_window(rec, late, "cam", smoother=s).kind == "unknown"
        # without a hold threshold the same sequence is unknown from the second window
        rec.open_set = OpenSet(unknown_below=0.0, idle_floor=0.0)
        s2 = Smoother(2, 0.5)
        classify_window(rec, w[0], "cam", smoother=s2)
        rec.open_set = strict
        assert classify_window(rec, w[1], "cam", smoother=s2).kind == "unknown"
    finally:
        rec.open_set, rec.open_set_enabled = saved


def test_a_batch_with_several_windows_of_one_track_decides_them_in_order(rec):
    """A server's backlog puts a stream's windows in one batch: each must see what the
    one before it left (history, held class, an idle reset), as one at a time."""
    from dataclasses import replace

    from finetec_live.inference.openset import OpenSet

    saved = rec.open_set, rec.open_set_enabled
    try:
        rec.open_set_enabled = False
        raw = {s: classify_window(rec, _window(s, 2.5), "x").probs for s in range(30)}
        # a window that starts a class and a next one whose mean with it is less sure
        pairs = [(a, b) for a in raw for b in raw if a != b
                 and raw[a].argmax() == (raw[a] + raw[b]).argmax()
                 and (raw[a] + raw[b]).max() / 2 < raw[a].max() - 0.01]
        a, b = pairs[0]
        p_a, p_ab = float(raw[a].max()), float((raw[a] + raw[b]).max() / 2)
        rule = OpenSet(unknown_below=0.5 * (p_a + p_ab), idle_floor=0.0,
                       hold_below=p_ab - 0.005)
        rec.open_set, rec.open_set_enabled = rule, True
        seq = [_window(a, 2.5), _window(b, 3.0), _window(a, 3.5, person=1),
               _window(b, 4.0, person=1)]
        streams = ["cam", "cam", "cam", "cam"]
        one_by_one = [classify_window(rec, w, st, smoother=s)
                      for s in [Smoother(2, 0.5)] for w, st in zip(seq, streams, strict=True)]
        together = classify_windows(rec, seq, streams, smoother=Smoother(2, 0.5))
        assert [c.message.label for c in together] == [c.message.label for c in one_by_one]
        assert [c.kind for c in together] == ["class"] * 4  # b's windows held
        # windows of one length, reordered into batch rows by length: still in order
        mixed = [seq[0], replace(seq[1], positions=seq[1].positions[:60],
                                 frame_valid=seq[1].frame_valid[:60],
                                 joint_valid=seq[1].joint_valid[:60],
                                 timestamps=seq[1].timestamps[15:])]
        sm1, sm2 = Smoother(2, 0.5), Smoother(2, 0.5)
        both = classify_windows(rec, mixed, ["cam", "cam"], smoother=sm1)
        alone = [classify_window(rec, w, "cam", smoother=sm2) for w in mixed]
        assert [c.message.label for c in both] == [c.message.label for c in alone]
        np.testing.assert_allclose(both[1].probs, alone[1].probs, atol=1e-5)
        # without the hold, b's windows are unknown
        rec.open_set = replace(rule, hold_below=None)
        plain = classify_windows(rec, seq, streams, smoother=Smoother(2, 0.5))
        assert [c.kind for c in plain] == ["class", "unknown", "class", "unknown"]
        # an idle window resets its track before the next window of the batch is pushed
        rec.open_set = OpenSet(unknown_below=0.0, idle_floor=0.002)
        still = [_window(0, 2.5, still=True), _window(2, 3.0)]
        got = classify_windows(rec, still, ["cam", "cam"], smoother=Smoother(4, 0.5))
        assert got[0].kind == "idle"
        np.testing.assert_allclose(got[1].probs, classify_window(rec, still[1], "y").probs,
                                   atol=1e-6)
    finally:
        rec.open_set, rec.open_set_enabled = saved
