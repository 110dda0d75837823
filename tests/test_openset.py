"""The open-set decision (class, unknown, idle), its thresholds in the checkpoint, its
calibration sets and the outlier clips it is trained and calibrated with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetec_live import Recognizer
from finetec_live.data.outliers import PENN_IN_JHMDB, jhmdb_outliers, split_outliers
from finetec_live.errors import FinetecError
from finetec_live.inference.openset import IDLE, UNKNOWN, OpenSet, decide
from finetec_live.learning import openset as L

NAMES = ["a", "b", "c"]


def test_decide_idle_then_unknown_then_class():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.2, 0.7, 0.1]])
    motion = np.array([[0.001, 0.0, 0.0005], [0.5, 0.1, 0.0], [0.3, 0.0, 0.0]])
    rule = OpenSet(unknown_below=0.5, idle_floor=0.002)
    got = decide(probs, motion, NAMES, rule)
    assert [d.label for d in got] == [IDLE, UNKNOWN, "b"]
    assert [d.kind for d in got] == ["idle", "unknown", "class"]
    assert got[0].score == pytest.approx(1 - 0.001 / 0.002)
    assert got[1].score == pytest.approx(0.6)
    assert got[2].score == pytest.approx(0.7)
    closed = decide(probs, motion, NAMES, None)
    assert [d.label for d in closed] == ["a", "a", "b"]


def test_prototypes_decide_unknown_by_similarity_when_features_are_given():
    protos = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    rule = OpenSet(0.5, 0.002, prototypes=protos, similar_below=0.8)
    np.testing.assert_allclose(np.linalg.norm(rule.prototypes, axis=1), 1.0, atol=1e-6)
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.2, 0.7, 0.1]])
    motion = np.full((3, 2), 0.5)
    feats = np.array([[1.0, 1.0, 0.0],    # cos 0.71 to a and b: unknown, although p = 0.9
                      [0.1, 0.0, 3.0],    # close to c: the top class a, p = 0.4
                      [0.0, 5.0, 0.2]])   # close to b
    got = decide(probs, motion, NAMES, rule, feats)
    assert [d.label for d in got] == [UNKNOWN, "a", "b"]
    assert got[0].score == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)
    assert got[1].score == pytest.approx(0.4)
    # without features, the top-probability rule
    assert [d.label for d in decide(probs, motion, NAMES, rule)] == ["a", UNKNOWN, "b"]
    back = OpenSet.from_dict(rule.to_dict())
    np.testing.assert_allclose(back.prototypes, rule.prototypes)
    assert back.similar_below == 0.8
    for bad in ({"prototypes": [[1.0, float("nan")]], "similar_below": 0.5},
                {"prototypes": [1.0, 2.0], "similar_below": 0.5},
                {"prototypes": [[1.0, 0.0]]}, {"prototypes": [[1.0, 0.0]], "similar_below": 2}):
        with pytest.raises(FinetecError):
            OpenSet.from_dict({"unknown_below": 0.5, "idle_floor": 0.0, **bad})


def test_class_prototypes_are_unit_mean_directions():
    feats = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    p = L.prototypes(feats, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(p, [[np.sqrt(0.5), np.sqrt(0.5)], [np.sqrt(0.5), np.sqrt(0.5)]],
                               atol=1e-6)
    with pytest.raises(ValueError, match="classes"):
        L.prototypes(feats, np.array([0, 0, 0, 0]), 2)


def _random_windows(n: int, seed: int) -> L.WindowSet:
    """``n`` random 30-frame penn13 windows of 2.5 s, labelled by turns with 15 classes."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(size=(n, 30, 13, 2)).astype(np.float32) * 20 + 100
    return L.WindowSet(pos, np.ones((n, 30), bool), np.ones((n, 30, 13), bool),
                       np.broadcast_to(np.linspace(0, 2.5, 30), (n, 30)).copy(),
                       np.arange(n) % 15, np.arange(n))


def test_the_similarity_floor_rejects_outliers_and_is_lowered_for_held_out_windows():
    rec = Recognizer.from_checkpoint("penn", device="cpu")
    ws = _random_windows(60, seed=2)
    rule = OpenSet(0.5, 0.0)
    out = L.with_prototypes(rec, rule, ws, ws, outlier_rejection=0.8)
    assert out.prototypes.shape == (15, rec.model.backbone.fc.in_features)
    assert out.calibration["outlier_unknown_rate"] == pytest.approx(0.8, abs=0.05)
    lowered = L.with_prototypes(rec, rule, ws, ws, inliers=ws, outlier_rejection=0.8,
                                max_inlier_rejection=0.1)
    assert lowered.similar_below < out.similar_below
    assert lowered.calibration["inlier_unknown_rate"] == pytest.approx(0.1, abs=0.05)
    assert "lowered" in lowered.calibration["unknown_rule"]
    r = L.rates(rec, ws, lowered)  # the prototype rule, as the live path applies it
    assert r["unknown"] == pytest.approx(0.1, abs=0.05)


def test_a_memory_of_training_windows_keeps_every_window_it_holds():
    """per_window: the prototypes are the moving training windows' own unit features (up
    to N, drawn with the seed), so a training window's nearest row is itself."""
    rec = Recognizer.from_checkpoint("penn", device="cpu")
    ws = _random_windows(40, seed=4)
    far = L.WindowSet(ws.positions[:20, :, ::-1] * np.float32(0.2), *[getattr(ws, f)[:20] for f in
                      ("frame_valid", "joint_valid", "timestamps")],
                      np.full(20, -1), np.arange(20))
    rule = OpenSet(0.5, 0.0)
    with pytest.raises(ValueError, match="held-out inliers"):
        L.with_prototypes(rec, rule, ws, far, outlier_rejection=0.9, per_window=100)
    mem = L.with_prototypes(rec, rule, ws, far, ws, outlier_rejection=0.9, per_window=100)
    assert mem.prototypes.shape == (40, rec.model.backbone.fc.in_features)
    _, _, feats = L.outputs(rec, ws)
    np.testing.assert_allclose(mem.similarity(feats), 1.0, atol=1e-5)
    assert L.rates(rec, ws, mem)["unknown"] == 0.0
    assert "nearest of 40 training windows" in mem.calibration["unknown_rule"]
    few = L.with_prototypes(rec, rule, ws, far, ws, outlier_rejection=0.9, per_window=10,
                            seed=1)
    again = L.with_prototypes(rec, rule, ws, far, ws, outlier_rejection=0.9, per_window=10,
                              seed=1)
    assert few.prototypes.shape[0] == 10
    np.testing.assert_array_equal(few.prototypes, again.prototypes)
    both = L.concat_windows(ws, far)
    assert len(both) == 60 and (both.labels[40:] == -1).all()


def test_predict_leaves_the_networks_features_on_the_batch():
    rec = Recognizer.from_checkpoint("penn", device="cpu")
    rng = np.random.default_rng(0)
    b = rec.prepare(rng.normal(size=(2, 30, 13, 2)), np.ones((2, 30), bool))
    assert b.features is None
    rec.predict(b)
    assert b.features.shape == (2, rec.model.backbone.fc.in_features)


def test_open_set_round_trips_and_refuses_bad_thresholds():
    rule = OpenSet(0.6, 0.003, {"n": 3})
    assert OpenSet.from_dict(rule.to_dict()) == rule
    for bad in ({"unknown_below": 1.5, "idle_floor": 0.0}, {"unknown_below": 0.5},
                {"unknown_below": "x", "idle_floor": 0.1},
                {"unknown_below": 0.5, "idle_floor": float("nan")}, [1, 2]):
        with pytest.raises(FinetecError):
            OpenSet.from_dict(bad)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The shipped weights with an open set whose idle floor a held pose is below."""
    from finetec_live.inference.checkpoint import resolve_checkpoint

    ck = torch.load(resolve_checkpoint("penn"), weights_only=True)
    ck["open_set"] = OpenSet(unknown_below=0.3, idle_floor=0.002).to_dict()
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    torch.save(ck, path)
    return Recognizer.from_checkpoint(path, device="cpu")


def test_recognizer_label_says_idle_for_a_held_pose_and_obeys_the_switch(calibrated):
    from finetec_live.data import load_penn_action

    clip = next(c for c in load_penn_action().test() if c.label_name == "jumping_jacks")
    still = L.still_windows([clip], 4, 64, np.random.default_rng(0), jitter=(0.001, 0.002),
                            drift=0.0)
    labels = calibrated.label(still.positions, still.frame_valid, still.joint_valid,
                              still.timestamps)
    assert labels == [IDLE] * 4
    moving = calibrated.label(clip.positions, np.ones(clip.num_frames, bool),
                              clip.joint_valid, clip.timestamps())
    assert moving == ["jumping_jacks"]
    calibrated.open_set_enabled = False
    try:
        assert calibrated.label(still.positions, still.frame_valid, still.joint_valid,
                                still.timestamps)[0] in calibrated.class_names
    finally:
        calibrated.open_set_enabled = True


def test_still_windows_hold_one_pose_with_bounded_jitter():
    from finetec_live.data import load_penn_action

    clips = list(load_penn_action().train())[:20]
    ws = L.still_windows(clips, 8, 64, np.random.default_rng(3), jitter=(0.01, 0.01),
                         drift=0.0)
    assert ws.positions.shape == (8, 64, 13, 2) and (ws.labels == -1).all()
    for n in range(8):
        ok = ws.joint_valid[n, 0]
        assert (ws.joint_valid[n] == ok).all() and ok.sum() >= 7
        p = ws.positions[n][:, ok]
        spread = p.std(0).mean()
        size = np.sqrt(((p.mean(0) - p.mean((0, 1))) ** 2).sum(-1).mean())
        assert spread == pytest.approx(0.01 * size, rel=0.35)


def test_clip_windows_give_whole_clips_and_live_crops():
    from finetec_live.data import load_penn_action

    clips = list(load_penn_action().train())[:5]
    whole = L.clip_windows(clips, 64, crops=False)
    assert len(whole) == 5 and (whole.labels == [c.label for c in clips]).all()
    both = L.clip_windows(clips, 64, 2.5, 1.25)
    n_crops = sum(len(range(0, c.num_frames - 75 + 1, 38)) for c in clips if c.num_frames > 75)
    assert len(both) == 5 + n_crops
    for n in range(len(both)):
        c = clips[both.source[n]]
        assert np.isclose(both.timestamps[n, -1], (c.num_frames - 1) / 30.0) or np.isclose(
            both.timestamps[n, -1], 74 / 30.0)


def test_outliers_are_the_actions_penn_lacks_and_calibration_is_held_out():
    train, test = jhmdb_outliers("train"), jhmdb_outliers("test")
    names = {c.label_name for c in train}
    assert len(names) == 12 and not names & set(PENN_IN_JHMDB)
    assert {c.label_name for c in test} == names
    assert all(c.layout == "penn13" and c.positions.shape[1] == 13 for c in train)
    fit, held = split_outliers(train)
    assert {c.name for c in fit}.isdisjoint({c.name for c in held})
    assert len(fit) + len(held) == len(train)
    assert {c.label_name for c in held} == names
    again = split_outliers(train)[1]
    assert [c.name for c in again] == [c.name for c in held]


def test_calibration_quantiles_set_the_thresholds(calibrated):
    from finetec_live.data import load_penn_action

    clips = list(load_penn_action().train())[:40]
    inl = L.clip_windows(clips, 64, crops=False)
    out = L.clip_windows(jhmdb_outliers("train")[:10], 64, crops=False, outlier=True)
    still = L.still_windows(clips, 10, 64, np.random.default_rng(0))
    rule = L.calibrate(calibrated, inl, out, still, idle_quantile=0.1, unknown_quantile=0.2,
                       outlier_rejection=0)
    probs, motion = L.scores(calibrated, inl)
    _, m_still = L.scores(calibrated, still)
    cal = rule.calibration
    assert (motion.max(1) <= cal["action_floor"]).mean() == pytest.approx(0.1, abs=0.03)
    assert cal["still_floor"] == pytest.approx(L.STILL_MARGIN * np.quantile(
        m_still.max(1), L.STILL_QUANTILE))
    assert rule.idle_floor == min(cal["action_floor"], cal["still_floor"])
    assert cal["still_idle"] >= 0.9
    moving = motion.max(1) > rule.idle_floor
    assert (probs.max(1)[moving] < rule.unknown_below).mean() == pytest.approx(0.2, abs=0.03)
    assert rule.calibration["inlier_windows"] == 40
    # the default rule: the level that rejects a share of the moving outlier windows
    by_out = L.calibrate(calibrated, inl, out, still, idle_quantile=0.1,
                         outlier_rejection=0.7)
    p_out, m_out = L.scores(calibrated, out)
    moving_out = m_out.max(1) > by_out.idle_floor
    assert (p_out.max(1)[moving_out] < by_out.unknown_below).mean() == pytest.approx(
        0.7, abs=0.11)
    assert by_out.calibration["outlier_rejection"] == 0.7
    assert rule.calibration["still_idle"] + rule.calibration["still_unknown"] <= 1.0


def test_calibrate_tool_writes_the_thresholds_and_a_stage(tmp_path, capsys):
    from _tools import load_tool

    from finetec_live.inference.checkpoint import resolve_checkpoint

    tool = load_tool("calibrate")
    out = tmp_path / "cal.pt"
    assert tool.main(["--checkpoint", str(resolve_checkpoint("penn")), "--out", str(out),
                      "--outlier-rejection", "0", "--unknown-quantile", "0.05"]) == 0
    ck = torch.load(out, weights_only=True)
    rule = OpenSet.from_dict(ck["open_set"])
    assert rule.calibration["unknown_quantile"] == 0.05
    assert ck["stages"][-1]["changed"].startswith("open-set thresholds calibrated")
    rec = Recognizer.from_checkpoint(out, device="cpu")
    assert rec.open_set == rule and rec.open_set_enabled
    capsys.readouterr()
    assert tool.main(["--checkpoint", str(out), "--report-only"]) == 2
    assert "needs --report" in capsys.readouterr().err


def test_still_windows_refuse_clips_without_a_half_body_frame():
    from finetec_live.data import Clip

    c = Clip(name="legs", positions=np.zeros((20, 13, 2)),
             joint_valid=np.zeros((20, 13), bool) | (np.arange(13) > 8), label=0,
             label_name="a", split="train", fps=30.0, layout="penn13")
    with pytest.raises(FinetecError, match="half the body"):
        L.still_windows([c], 5, 16, np.random.default_rng(0))


def test_a_held_class_continues_down_to_the_hold_threshold():
    probs = np.array([[0.4, 0.35, 0.25]] * 4 + [[0.25, 0.4, 0.35]])
    motion = np.full((5, 2), 0.5)
    rule = OpenSet(unknown_below=0.5, idle_floor=0.002, hold_below=0.3)
    held = np.array([0, 1, -1, 0, 0])  # the track held a, b, nothing, a, a
    got = decide(probs, motion, NAMES, rule, held=held)
    # a continues at 0.4 >= 0.3; holding b, or nothing, a at 0.4 is not enough to start;
    # the last window's top class (b) is not the held one
    assert [d.label for d in got] == ["a", UNKNOWN, UNKNOWN, "a", UNKNOWN]
    assert got[0].kind == "class" and got[0].score == pytest.approx(0.4)
    edge = np.array([[0.3, 0.25, 0.45], [0.29, 0.26, 0.45]])  # a at the threshold, below
    got = decide(edge, motion[:2], NAMES, OpenSet(0.5, 0.002, hold_below=0.45),
                 held=np.array([2, 2]))
    assert [d.label for d in got] == ["c", "c"]  # 0.45 >= 0.45: held c continues
    got = decide(edge, motion[:2], NAMES, OpenSet(0.5, 0.002, hold_below=0.46),
                 held=np.array([2, 2]))
    assert [d.label for d in got] == [UNKNOWN, UNKNOWN]
    # without a hold threshold, or without held classes, the plain rule
    assert decide(probs, motion, NAMES, OpenSet(0.5, 0.002), held=held)[0].label == UNKNOWN
    assert decide(probs, motion, NAMES, rule)[0].label == UNKNOWN
    # still windows are idle whatever is held
    assert decide(probs[:1], np.zeros((1, 2)), NAMES, rule, held=held[:1])[0].label == IDLE


def test_the_hold_threshold_is_checked_and_kept_in_the_checkpoint():
    rule = OpenSet(0.5, 0.002, hold_below=0.3)
    assert OpenSet.from_dict(rule.to_dict()).hold_below == pytest.approx(0.3)
    assert OpenSet.from_dict(OpenSet(0.5, 0.002).to_dict()).hold_below is None
    for bad in (0.6, -0.1, float("nan")):
        with pytest.raises(FinetecError, match="hold_below"):
            OpenSet(0.5, 0.002, hold_below=bad)
    held = L.with_hold(OpenSet(0.4, 0.002), 0.75)
    assert held.hold_below == pytest.approx(0.3) and held.calibration["hold"] == 0.75
    assert L.with_hold(held, 1.0).hold_below is None
    assert L.with_hold(held, None).hold_below is None
    with pytest.raises(FinetecError, match="hold factor"):
        L.with_hold(held, 1.5)
