"""The corruption protocol: counts, placement, determinism, specs, training and live forms."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetec_live.data import corruption as C
from finetec_live.data.corruption import Corruption, FrameDropper
from finetec_live.errors import FinetecError


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of missing frames."""
    miss = np.concatenate([[False], ~valid, [False]]).astype(np.int8)
    d = np.diff(miss)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def test_finetec_rates():
    assert (C.MINOR, C.MODERATE, C.SEVERE) == C.FINETEC_RATES == (0.25, 0.5, 0.75)
    assert [C.missing_count(64, r) for r in C.FINETEC_RATES] == [16, 32, 48]


@pytest.mark.parametrize(("T", "r", "n"), [
    (1, 0.0, 0), (1, 0.5, 0), (1, 0.99, 0), (2, 0.25, 1), (2, 0.99, 1), (3, 0.5, 2),
    (10, 0.25, 3), (10, 0.05, 1), (10, 0.04, 0), (64, 0.3, 19), (100, 0.999, 99),
])
def test_missing_count(T, r, n):
    assert C.missing_count(T, r) == n


@settings(max_examples=150, deadline=None)
@given(T=st.integers(1, 300), r=st.floats(0.0, 0.999), runs=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_exact_counts_every_kind(T, r, runs, seed):
    n = C.missing_count(T, r)
    assert 0 <= n <= max(T - 1, 0)
    rng = np.random.default_rng(seed)
    masks = {
        "random": C.random_frames(T, r, rng), "burst": C.bursts(T, r, runs, rng),
        "prefix": C.prefix(T, r), "suffix": C.suffix(T, r), "middle": C.middle(T, r),
        "regular": C.regular(T, r, rng),
    }
    for kind, m in masks.items():
        assert m.shape == (T,) and m.dtype == bool, kind
        assert int((~m).sum()) == n, kind
        assert m.any(), kind  # at least one frame is always kept
    got = _runs(masks["burst"])
    assert len(got) == (min(runs, n, T - n + 1) if n else 0)
    assert sum(length for _, length in got) == n
    for kind in ("prefix", "suffix", "middle"):
        assert len(_runs(masks[kind])) == (1 if n else 0)


def test_placement_of_deterministic_kinds():
    T = 20
    assert not C.prefix(T, 0.3)[:6].any() and C.prefix(T, 0.3)[6:].all()
    tail = C.suffix(T, 0.5)  # the newest frames are the lost ones
    assert tail[:10].all() and not tail[10:].any()
    mid = C.middle(T, 0.3)
    assert _runs(mid) == [(7, 6)]
    assert np.array_equal(mid, mid[::-1])  # centred


def test_bursts_are_contiguous_and_separated():
    rng = np.random.default_rng(1)
    starts = Counter()
    for _ in range(300):
        m = C.bursts(64, 0.6, 3, rng)
        runs = _runs(m)
        # three maximal runs: separated by kept frames, never merged into fewer
        assert len(runs) == 3 and sum(n for _, n in runs) == 38
        starts[runs[0][0]] += 1
    assert len(starts) > 5  # the runs move around
    # more runs than missing frames: one run per missing frame
    m = C.bursts(10, 0.2, 5, rng)
    assert _runs(m) == [(s, 1) for s, _ in _runs(m)] and len(_runs(m)) == 2


def test_regular_pattern():
    rng = np.random.default_rng(0)
    m = C.regular(64, 0.5, rng)
    assert (m[::2] != m[1::2]).all()  # alternating
    m = C.regular(64, 0.75, rng)
    assert all(int(m[i:i + 4].sum()) == 1 for i in range(0, 64, 4))  # one kept in every four
    m = C.regular(64, 0.25, rng)
    gaps = np.diff(np.flatnonzero(~m))
    assert set(gaps) == {4}
    phases = {int(np.flatnonzero(~C.regular(64, 0.25, rng))[0]) for _ in range(50)}
    assert phases == {0, 1, 2, 3}  # random phase


def test_random_frames_uniform_and_deterministic():
    a = C.random_frames(64, 0.5, np.random.default_rng(7))
    b = C.random_frames(64, 0.5, np.random.default_rng(7))
    c = C.random_frames(64, 0.5, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rng = np.random.default_rng(0)
    freq = np.mean([~C.random_frames(64, 0.25, rng) for _ in range(2000)], axis=0)
    assert np.allclose(freq, 0.25, atol=0.05)


def test_joint_dropout():
    rng = np.random.default_rng(0)
    m = C.joint_dropout(500, 13, 0.1, rng)
    assert m.shape == (500, 13) and m.dtype == bool
    assert abs((~m).mean() - 0.1) < 0.01
    assert C.joint_dropout(3, 2, 0.0, rng).all()
    assert np.array_equal(C.joint_dropout(10, 5, 0.3, np.random.default_rng(3)),
                          C.joint_dropout(10, 5, 0.3, np.random.default_rng(3)))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: C.random_frames(0, 0.5, np.random.default_rng()), "T must be"),
    (lambda: C.random_frames(5.0, 0.5, np.random.default_rng()), "T must be"),
    (lambda: C.prefix(10, 1.0), r"\[0, 1\)"),
    (lambda: C.suffix(10, -0.1), r"\[0, 1\)"),
    (lambda: C.middle(10, float("nan")), r"\[0, 1\)"),
    (lambda: C.bursts(10, 0.5, 0, np.random.default_rng()), "runs"),
    (lambda: C.regular(10, 0.5, 42), "Generator"),
    (lambda: C.joint_dropout(10, 0, 0.1, np.random.default_rng()), "V must be"),
    (lambda: C.joint_dropout(10, 3, 1.0, np.random.default_rng()), "p must be"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize(("spec", "kind", "rate", "runs", "canon"), [
    ("clean", "clean", 0.0, 1, "clean"),
    ("random:0.5", "random", 0.5, 1, "random:0.5"),
    ("burst:0.6:3", "burst", 0.6, 3, "burst:0.6:3"),
    ("burst:0.6", "burst", 0.6, 1, "burst:0.6:1"),
    ("tail:0.5", "tail", 0.5, 1, "tail:0.5"),
    ("suffix:0.5", "tail", 0.5, 1, "tail:0.5"),
    (" Prefix:0.30 ", "prefix", 0.3, 1, "prefix:0.3"),
    ("middle:0.3", "middle", 0.3, 1, "middle:0.3"),
    ("regular:0.5", "regular", 0.5, 1, "regular:0.5"),
    ("joints:0.1", "joints", 0.1, 1, "joints:0.1"),
    ("native:0.75", "native", 0.75, 1, "native:0.75"),
])
def test_parse(spec, kind, rate, runs, canon):
    c = Corruption.parse(spec)
    assert (c.kind, c.rate, c.runs) == (kind, rate, runs)
    assert str(c) == c.spec == canon
    assert Corruption.parse(canon) == c and Corruption.parse(c) is c
    assert c.on_native_frames == (kind == "native")


@pytest.mark.parametrize("spec", ["", "bogus:0.5", "random", "random:1.0", "random:-0.1",
                                  "random:abc", "burst:0.5:0", "burst:0.5:x", "tail:0.5:2",
                                  "clean:0.5", "random:0.5:3", "random:nan", 3])
def test_parse_rejects(spec):
    with pytest.raises(FinetecError):
        Corruption.parse(spec)


def test_frame_and_joint_masks():
    rng = np.random.default_rng(0)
    assert Corruption.parse("clean").frame_mask(10).all()
    assert Corruption.parse("clean").is_clean and Corruption.parse("random:0").is_clean
    assert np.array_equal(Corruption.parse("tail:0.5").frame_mask(10), C.suffix(10, 0.5))
    assert (~Corruption.parse("native:0.5").frame_mask(64, rng)).sum() == 32
    assert len(_runs(Corruption.parse("burst:0.6:3").frame_mask(64, rng))) == 3
    j = Corruption.parse("joints:0.2")
    assert j.frame_mask(10, rng).all() and not j.joint_mask(100, 13, rng).all()
    assert Corruption.parse("random:0.5").joint_mask(4, 3).all()
    frames, joints = Corruption.parse("random:0.5").masks(20, 3, rng)
    assert np.array_equal(joints, np.repeat(frames[:, None], 3, axis=1))
    with pytest.raises(ValueError, match="rng"):
        Corruption.parse("random:0.5").frame_mask(10)
    with pytest.raises(FinetecError, match="rate"):
        Corruption("random", 1.5)


def test_eval_protocols():
    specs = C.EVAL_PROTOCOLS
    assert specs[0] == "clean"
    assert {"random:0.25", "random:0.5", "random:0.75", "native:0.25", "native:0.5",
            "native:0.75", "burst:0.3:3", "burst:0.6:3", "tail:0.5", "tail:0.25"} <= set(specs)
    assert len(set(specs)) == len(specs)
    assert [str(c) for c in C.eval_corruptions()] == list(specs)  # already canonical


def test_protocol_rng_reproducible_and_distinct():
    def draw(seed, i, spec):
        return C.protocol_rng(seed, i, spec).integers(0, 2**31, 4).tolist()

    assert draw(0, 5, "random:0.5") == draw(0, 5, "random:0.50")
    assert draw(0, 5, "random:0.5") != draw(0, 6, "random:0.5")
    assert draw(0, 5, "random:0.5") != draw(1, 5, "random:0.5")
    assert draw(0, 5, "random:0.5") != draw(0, 5, "native:0.5")
    # fixed across processes and versions of this code (crc32, not hash())
    assert draw(0, 0, "clean") == draw(0, 0, Corruption())
    with pytest.raises(ValueError):
        C.protocol_rng(-1, 0, "clean")


# --------------------------------------------------------------------------- training
def test_diverse_mask_covers_all_kinds():
    rng = np.random.default_rng(0)
    kinds = Counter()
    runs = Counter()
    for _ in range(600):
        c = C.draw_training_corruption(rng)
        kinds[c.kind] += 1
        if c.kind == "burst":
            runs[c.runs] += 1
        assert 0.0 <= c.rate <= 0.8
    assert set(kinds) == set(C.TRAINING_KINDS) == {"random", "regular", "prefix", "tail",
                                                  "middle", "burst"}
    assert min(kinds.values()) > 50 and set(runs) == {1, 2, 3, 4}

    # the masks themselves: every shape of gap shows up, joints drop too
    rng = np.random.default_rng(1)
    seen = Counter()
    joint_drops = 0
    for _ in range(400):
        frames, joints = C.diverse_mask(64, 13, rng)
        assert frames.shape == (64,) and joints.shape == (64, 13)
        assert frames.any() and (~frames).sum() <= C.missing_count(64, 0.8)
        assert not joints[~frames].any()
        joint_drops += int((~joints[frames]).sum())
        r = _runs(frames)
        if not r:
            continue
        if len(r) == 1 and r[0][0] == 0:
            seen["prefix"] += 1
        elif len(r) == 1 and r[0][0] + r[0][1] == 64:
            seen["tail"] += 1
        elif len(r) == 1:
            seen["one inner run"] += 1
        elif len(set(np.diff(np.flatnonzero(~frames)))) <= 2 and len(r) > 5:
            seen["scattered"] += 1
        else:
            seen["several runs"] += 1
    assert set(seen) == {"prefix", "tail", "one inner run", "scattered", "several runs"}
    assert joint_drops > 0


def test_diverse_mask_deterministic():
    a = C.diverse_mask(48, 17, np.random.default_rng(5))
    b = C.diverse_mask(48, 17, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for T in (1, 2, 3):
        frames, joints = C.diverse_mask(T, 4, np.random.default_rng(T))
        assert frames.any() and joints.shape == (T, 4)


# --------------------------------------------------------------------------- live
def test_frame_dropper_rate_and_reproducible():
    d = FrameDropper(0.3, seed=11)
    kept = [d.keep() for _ in range(10_000)]
    assert d.seen == 10_000 and d.dropped == kept.count(False) and d.kept == sum(kept)
    assert abs(d.observed_rate - 0.3) < 0.02
    again = FrameDropper(0.3, seed=11)
    assert [again.keep() for _ in range(10_000)] == kept
    other = FrameDropper(0.3, seed=12)
    assert [other.keep() for _ in range(10_000)] != kept
    d.reset()
    assert d.seen == 0 and [d.keep() for _ in range(100)] == kept[:100]
    z = FrameDropper(0.0)
    assert all(z.keep() for _ in range(1000)) and z.dropped == 0 and z.observed_rate == 0.0
    for bad in (1.0, -0.2, "x"):
        with pytest.raises(FinetecError, match="drop"):
            FrameDropper(bad)
