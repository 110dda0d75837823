"""The segmenter: per-window labels -> segments with hysteresis (flicker absorbed,
unknown and idle segments like any other, holes in the coverage, the flush)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetec_live.live.segments import Segment, Segmenter, timeline_lines

WINDOW, HOP = 2.5, 0.5


def _run(labels, enter: int = 2, scores=None, seqs=None, gap: float = HOP) -> list[Segment]:
    """Windows of 2.5 s every 0.5 s (seq k starts at k * hop) with these labels."""
    seg = Segmenter(enter=enter, gap=gap)
    seqs = list(range(len(labels))) if seqs is None else seqs
    scores = [0.9] * len(labels) if scores is None else scores
    out = []
    for lab, sc, k in zip(labels, scores, seqs, strict=True):
        done = seg.push(lab, sc, k * HOP, k * HOP + WINDOW, k)
        if done is not None:
            out.append(done)
    last = seg.flush()
    return out + ([last] if last is not None else [])


def _centre(k: int) -> float:
    return k * HOP + WINDOW / 2


def test_one_label_is_one_segment():
    (s,) = _run(["squat"] * 6, scores=[0.5, 0.7, 0.9, 0.9, 0.7, 0.5])
    assert (s.seq, s.label, s.windows, s.votes) == (0, "squat", 6, 6)
    assert s.t_start == 0.0 and s.t_end == 5 * HOP + WINDOW
    assert s.score == pytest.approx(0.7)
    assert (s.first_window, s.last_window) == (0, 5)


def test_a_change_takes_enter_windows_and_starts_at_the_first_ones_centre():
    segs = _run(["squat"] * 4 + ["jump"] * 5)
    assert [s.label for s in segs] == ["squat", "jump"]
    a, b = segs
    assert (a.windows, b.windows) == (4, 5) and (a.last_window, b.first_window) == (3, 4)
    assert a.t_end == b.t_start == _centre(4)  # the segments tile the time
    assert b.t_end == 8 * HOP + WINDOW


def test_flicker_is_absorbed_and_not_counted_in_the_score():
    segs = _run(["squat", "squat", "jump", "squat", "lunge", "jump", "squat", "squat"],
                scores=[0.8, 0.8, 0.3, 0.6, 0.2, 0.4, 0.8, 0.8])
    (s,) = segs
    assert (s.label, s.windows, s.votes) == ("squat", 8, 5)
    assert s.score == pytest.approx((0.8 * 4 + 0.6) / 5)


def test_enter_one_follows_every_change_and_enter_three_holds_longer():
    assert [s.label for s in _run(["a", "b", "a", "b"], enter=1)] == ["a", "b", "a", "b"]
    assert [s.label for s in _run(["a", "b", "b", "a", "b", "b", "b"], enter=3)] == ["a", "b"]
    segs = _run(["a", "b", "b", "a", "b", "b", "b"], enter=3)
    assert segs[0].windows == 4 and segs[1].first_window == 4


def test_unknown_and_idle_are_segments_like_any_label():
    labels = ["idle"] * 3 + ["clean_and_jerk"] * 4 + ["unknown"] * 3 + ["idle"] * 2
    segs = _run(labels)
    assert [(s.label, s.windows) for s in segs] == [("idle", 3), ("clean_and_jerk", 4),
                                                    ("unknown", 3), ("idle", 2)]
    assert [s.seq for s in segs] == [0, 1, 2, 3]
    for a, b in itertools.pairwise(segs):
        assert a.t_end == b.t_start


def test_idle_segments_span_their_idle_windows_exactly():
    """An idle window is still throughout, any other moves somewhere: idle starts at its
    first idle window's start and ends at its last idle window's end."""
    segs = _run(["idle"] * 4 + ["squat"] * 6 + ["idle"] * 3)
    assert [s.label for s in segs] == ["idle", "squat", "idle"]
    assert segs[0].t_end == segs[1].t_start == 3 * HOP + WINDOW  # the last idle window's end
    assert segs[1].t_end == segs[2].t_start == 10 * HOP  # the first idle window's start
    segs = _run(["idle", "idle", "squat", "idle", "squat", "squat"])  # absorbed flicker
    assert segs[0].t_end == 3 * HOP + WINDOW and segs[0].windows == 4


def test_the_idle_label_is_the_recognizers():
    from finetec_live.inference.openset import IDLE as RECOGNIZER_IDLE
    from finetec_live.live.segments import IDLE

    assert IDLE == RECOGNIZER_IDLE


def test_a_pending_change_at_the_end_stays_in_the_last_segment():
    (s,) = _run(["a"] * 4 + ["b"])
    assert (s.label, s.windows, s.votes, s.last_window) == ("a", 5, 4, 4)
    assert s.t_end == 4 * HOP + WINDOW  # the flush covers the last window too


def test_a_hole_in_the_coverage_closes_the_segment():
    # windows 0-3, then nothing classified until 20 (the person left the view)
    segs = _run(["a"] * 4 + ["a"] * 3, seqs=[0, 1, 2, 3, 20, 21, 22])
    assert [(s.label, s.windows) for s in segs] == [("a", 4), ("a", 3)]
    assert segs[0].t_end == 3 * HOP + WINDOW and segs[1].t_start == 20 * HOP
    # a window or two lost (dropped by inference) is no hole: the windows overlap
    (s,) = _run(["a"] * 4, seqs=[0, 1, 4, 5])
    assert s.windows == 4 and s.last_window == 5


def test_a_hole_ends_a_pending_change_inside_the_segment():
    segs = _run(["a", "a", "b", "b", "b"], seqs=[0, 1, 2, 30, 31])
    assert [(s.label, s.windows) for s in segs] == [("a", 3), ("b", 2)]
    assert segs[1].t_start == 30 * HOP


def test_flush_twice_and_nothing_pushed():
    seg = Segmenter()
    assert seg.flush() is None and seg.label is None
    seg.push("a", 0.5, 0.0, 2.5, 0)
    assert seg.label == "a"
    assert seg.flush() is not None and seg.flush() is None


@pytest.mark.parametrize("enter", [0, -1, 1.5, True])
def test_bad_enter(enter):
    with pytest.raises(ValueError, match="enter"):
        Segmenter(enter=enter)


def test_timeline_lines():
    segs = _run(["idle"] * 3 + ["squat", "squat", "jump", "squat"])
    lines = timeline_lines(segs, more=2)
    assert len(lines) == 3
    assert "idle" in lines[0] and "3 windows" in lines[0] and "mean score 0.90" in lines[0]
    assert "4 windows, 1 other" in lines[1]
    assert lines[2].startswith("... and 2 more")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "unknown", "idle"]),
                          st.floats(0, 1), st.integers(1, 6)), max_size=60),
       st.integers(1, 4))
def test_segments_account_for_every_window(windows, enter):
    """Whatever the labels, scores and seq gaps: every window in exactly one segment,
    segments in order and not overlapping, a label's segments never adjacent without a
    hole between them, scores the mean of the votes."""
    seqs, k = [], 0
    for _, _, step in windows:
        k += step
        seqs.append(k)
    labels = [w[0] for w in windows]
    scores = [w[1] for w in windows]
    segs = _run(labels, enter=enter, scores=scores, seqs=seqs)
    assert sum(s.windows for s in segs) == len(windows)
    assert [s.seq for s in segs] == list(range(len(segs)))
    i = 0
    for s in segs:
        inside = list(range(i, i + s.windows))
        i += s.windows
        assert (seqs[inside[0]], seqs[inside[-1]]) == (s.first_window, s.last_window)
        mine = [scores[j] for j in inside if labels[j] == s.label]
        assert len(mine) == s.votes >= 1 and labels[inside[0]] == s.label
        assert s.score == pytest.approx(sum(mine) / len(mine))
        assert s.t_start <= s.t_end
    for a, b in itertools.pairwise(segs):
        if b.t_start == a.t_end:  # a change of label: it held for enter windows
            assert a.label != b.label and b.votes >= enter
        else:  # a hole in the coverage
            assert b.t_start > a.t_end
