"""Dataset readers on the real files in ../shared/data, and on small files written here."""

from __future__ import annotations

import os
import pickle
from collections import Counter

import numpy as np
import pytest
import scipy.io

from finetec_live.data import (
    JHMDB_CLASSES,
    PENN_CLASSES,
    PENN_PLACEHOLDER_MAX,
    Clip,
    ClipSet,
    RestrictedUnpickler,
    load_dataset,
    load_jhmdb,
    load_penn_action,
    load_pyskl,
    safe_load_pickle,
)
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import JHMDB15, PENN13


# --------------------------------------------------------------------------- Penn Action
def test_penn_counts_classes_split(penn):
    assert len(penn) == 2326
    assert penn.class_names == PENN_CLASSES
    assert penn.num_classes == 15
    assert penn.layout == "penn13"
    assert len(penn.train()) == 1258
    assert len(penn.test()) == 1068
    assert {c.split for c in penn.train()} == {"train"}
    assert len({c.name for c in penn}) == 2326
    counts = Counter(c.label_name for c in penn)
    assert set(counts) == set(PENN_CLASSES)
    assert counts["squat"] == 231 and counts["jump_rope"] == 82  # largest and smallest class


def test_penn_shapes_and_values(penn):
    lengths = penn.lengths()
    assert lengths.min() == 18 and lengths.max() == 663
    assert np.median(lengths) == 56
    for c in penn:
        assert c.positions.dtype == np.float32 and c.joint_valid.dtype == bool
        assert c.positions.shape == (c.num_frames, 13, 2) == (c.num_frames, PENN13.num_joints, 2)
        assert c.joint_valid.shape == (c.num_frames, 13)
        assert np.isfinite(c.positions).all()
        assert c.fps == 30.0 and c.layout == "penn13"
        assert penn.class_names[c.label] == c.label_name
        assert not c.positions.flags.writeable and not c.joint_valid.flags.writeable
    assert np.array_equal(penn.labels(), [c.label for c in penn])


def test_penn_first_clip_matches_the_file(penn, data_root):
    c = penn["0001"]
    assert c.label_name == "baseball_pitch" and c.split == "test" and c.num_frames == 151
    mat = scipy.io.loadmat(data_root / "penn_action" / "labels" / "0001.mat")
    assert np.allclose(c.positions[..., 0], mat["x"]) and np.allclose(c.positions[..., 1], mat["y"])
    assert np.array_equal(c.joint_valid, mat["visibility"].astype(bool))


def test_penn_placeholder_joints_are_invalid(penn, data_root):
    placeholder_joints, placeholder_clips, by_class = 0, 0, Counter()
    total = 0
    for c in penn:
        ph = (c.positions < PENN_PLACEHOLDER_MAX).all(axis=-1)
        total += ph.size
        assert not (ph & c.joint_valid).any(), c.name
        if ph.any():
            # the placeholder sits on the diagonal: x == y, between 0 and about 1.5
            assert np.array_equal(c.positions[ph][:, 0], c.positions[ph][:, 1])
            placeholder_joints += int(ph.sum())
            placeholder_clips += 1
            by_class[c.label_name] += 1
    # measured on the shared copy: 8.8% of all joints, in a third of the clips
    assert placeholder_joints == 187_352 and total == 2_129_933
    assert placeholder_clips == 770
    assert {n for n, _ in by_class.most_common(4)} == {"pushup", "squat", "bench_press",
                                                       "strum_guitar"}
    # every other joint lies well away from the corner
    far = min(float(c.positions[~(c.positions < PENN_PLACEHOLDER_MAX).all(-1)].max(-1).min())
              for c in penn if (~(c.positions < PENN_PLACEHOLDER_MAX).all(-1)).any())
    assert far > 8.0


def test_penn_annotated_mask_keeps_occluded_joints(penn, data_root):
    ann = load_penn_action(data_root, mask="annotated")
    assert len(ann) == len(penn)
    n_vis = sum(int(c.joint_valid.sum()) for c in penn)
    n_ann = sum(int(c.joint_valid.sum()) for c in ann)
    assert n_ann > n_vis
    for a, v in zip(ann.clips[:200], penn.clips[:200], strict=True):
        assert not (v.joint_valid & ~a.joint_valid).any()  # visibility mask is a subset
        ph = (a.positions < PENN_PLACEHOLDER_MAX).all(-1)
        assert np.array_equal(a.joint_valid, ~ph)


def test_penn_is_cached(penn, data_root):
    assert load_penn_action(data_root) is penn
    assert load_dataset("penn", data_root) is penn and load_dataset("Penn_Action") is penn
    with pytest.raises(FinetecError, match="mask"):
        load_penn_action(data_root, mask="bogus")


# --------------------------------------------------------------------------- J-HMDB
def test_jhmdb_counts_and_shapes(jhmdb, data_root):
    assert len(jhmdb.train()) == 433 and len(jhmdb.test()) == 176
    assert jhmdb.class_names == JHMDB_CLASSES and jhmdb.num_classes == 14
    assert jhmdb.layout == "jhmdb15"
    assert set(jhmdb.train().labels()) == set(range(14)) == set(jhmdb.test().labels())
    for c in jhmdb:
        assert c.positions.shape == (c.num_frames, JHMDB15.num_joints, 2) == (c.num_frames, 15, 2)
        assert 15 <= c.num_frames <= 40
        assert c.joint_valid.all() and np.isfinite(c.positions).all()
        assert np.abs(c.positions).max() < 5  # normalised coordinates, not pixels
    # puppet order: the face is above the neck, the belly below it (y down)
    assert load_dataset("jhmdb", data_root) is jhmdb
    first = jhmdb["train_0000"]
    assert first.label_name == "clap"
    assert (first.positions[:, 2, 1] < first.positions[:, 0, 1]).all()
    assert (first.positions[:, 1, 1] > first.positions[:, 0, 1]).all()


def test_jhmdb_missing_file(tmp_path):
    (tmp_path / "jhmdb").mkdir()
    with pytest.raises(FinetecError, match=r"GT_train_1\.pkl"):
        load_jhmdb(tmp_path)
    with pytest.raises(FinetecError, match="jhmdb"):
        load_jhmdb(tmp_path / "jhmdb")


# --------------------------------------------------------------------------- restricted pickles
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"pose": [np.zeros((2, 15, 2))], "x": _Exploit(marker)}))
    with pytest.raises(FinetecError, match="refusing to load global"):
        safe_load_pickle(bad)
    assert not marker.exists()
    with open(bad, "rb") as fh, pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(fh).load()
    assert not marker.exists()
    # an object array smuggles its elements through the same check
    obj = tmp_path / "obj.pkl"
    obj.write_bytes(pickle.dumps(np.array([_Exploit(marker)], dtype=object)))
    with pytest.raises(FinetecError, match="refusing"):
        safe_load_pickle(obj)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(V__import__('os').system('touch MARK')\ntR.",
    b"cposix\nsystem\n(Vtouch MARK\ntR.",
    b"c_codecs\nencode\n(Vx\nVrot13\ntR.",
    b"cnumpy\nload\n(VMARK\ntR.",
])
def test_unpickler_refuses_hand_made_payloads(tmp_path, payload):
    marker = tmp_path / "mark"
    path = tmp_path / "p.pkl"
    path.write_bytes(payload.replace(b"MARK", str(marker).encode()))
    with pytest.raises(FinetecError, match="refusing"):
        safe_load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_unpickler_rebuilds_numpy(tmp_path, protocol):
    data = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": [np.int64(7), 1.5, "s"],
            "c": (np.zeros((2, 0)), np.asfortranarray(np.ones((3, 2), np.float16)))}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_load_pickle(path)
    assert np.array_equal(out["a"], data["a"]) and out["a"].dtype == np.float32
    assert out["b"] == [7, 1.5, "s"] and isinstance(out["b"][0], np.int64)
    assert out["c"][0].shape == (2, 0) and out["c"][1].dtype == np.float16


def test_unpickler_bad_files(tmp_path):
    with pytest.raises(FinetecError, match=r"missing\.pkl"):
        safe_load_pickle(tmp_path / "missing.pkl")
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps({"a": np.ones(100)})[:50])
    with pytest.raises(FinetecError, match=r"broken\.pkl"):
        safe_load_pickle(broken)


def test_bad_penn_files(tmp_path):
    with pytest.raises(FinetecError, match="penn_action"):
        load_penn_action(tmp_path)
    labels = tmp_path / "penn_action" / "labels"
    labels.mkdir(parents=True)
    with pytest.raises(FinetecError, match=r"no \.mat files"):
        load_penn_action(tmp_path)
    (labels / "0001.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(FinetecError, match=r"0001\.mat"):
        load_penn_action(tmp_path)
    scipy.io.savemat(labels / "0001.mat", {"action": "squat", "x": np.ones((4, 13))})
    with pytest.raises(FinetecError, match=r"0001\.mat lacks"):
        load_penn_action(tmp_path)
    t = np.ones((4, 13))
    scipy.io.savemat(labels / "0001.mat", {"action": "squat", "x": t, "y": np.ones((4, 12)),
                                           "visibility": t, "train": 1, "nframes": 4})
    with pytest.raises(FinetecError, match="shapes"):
        load_penn_action(tmp_path)


def test_small_penn_copy(tmp_path):
    labels = tmp_path / "penn_action" / "labels"
    labels.mkdir(parents=True)
    x = np.full((5, 13), 100.0)
    x[2, 3] = 0.75  # a joint outside the image
    vis = np.ones((5, 13), np.uint8)
    vis[4, 0] = 0  # an occluded joint
    for i, (action, train) in enumerate([("squat", 1), ("bowl", -1), ("squat", -1)], 1):
        scipy.io.savemat(labels / f"{i:04d}.mat", {
            "action": action, "x": x.astype(np.uint16) if i == 3 else x, "y": x + 1,
            "visibility": vis, "train": train, "nframes": 5, "dimensions": [200, 300, 5]})
    s = load_penn_action(tmp_path)
    assert s.class_names == ("bowl", "squat")
    assert [c.label for c in s] == [1, 0, 1] and [c.split for c in s] == ["train", "test", "test"]
    c = s["0001"]
    assert not c.joint_valid[2, 3] and not c.joint_valid[4, 0] and c.joint_valid.sum() == 63
    assert load_penn_action(tmp_path, mask="annotated")["0001"].joint_valid.sum() == 64


# --------------------------------------------------------------------------- PYSKL
def _pyskl_file(tmp_path, v=17, protocol=4):
    rng = np.random.default_rng(0)
    anns = []
    for i in range(5):
        t = 10 + i
        kp = rng.uniform(0, 500, (2, t, v, 2)).astype(np.float32)
        score = np.full((2, t, v), 0.9, np.float32)
        score[0] = 0.3  # person 0 has the lower mean score: person 1 is chosen
        score[1, :, 0] = 0.05  # person 1's first joint is never reliable
        score[1, 0, :] = 0.1  # nor its first frame
        if i == 4:
            score[0], score[1] = 0.95, 0.2  # here person 0 wins
        anns.append({"frame_dir": f"S001C001P001R001A{i:03d}", "label": i % 3,
                     "keypoint": kp, "keypoint_score": score, "total_frames": t,
                     "img_shape": (1080, 1920), "original_shape": (1080, 1920)})
    data = {"split": {"xsub_train": [a["frame_dir"] for a in anns[:3]],
                      "xsub_val": [a["frame_dir"] for a in anns[3:]],
                      "xview_train": []}, "annotations": anns}
    path = tmp_path / "tiny_hrnet.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path, anns


@pytest.mark.parametrize("protocol", [2, 5])
def test_pyskl_roundtrip(tmp_path, protocol):
    path, anns = _pyskl_file(tmp_path, protocol=protocol)
    s = load_pyskl(path)
    assert isinstance(s, ClipSet) and s.layout == "coco17" and len(s) == 5
    assert [c.split for c in s] == ["train"] * 3 + ["test"] * 2
    assert s.class_names == ("class_000", "class_001", "class_002")
    for c, a in zip(s, anns, strict=True):
        assert c.name == a["frame_dir"] and c.label == a["label"]
        assert c.positions.shape == (a["total_frames"], 17, 2)
        person = 0 if c.name.endswith("004") else 1
        assert np.allclose(c.positions, a["keypoint"][person])
        assert np.array_equal(c.joint_valid, a["keypoint_score"][person] >= 0.2)
    c = s[0]
    assert not c.joint_valid[:, 0].any() and not c.joint_valid[0].any()
    assert c.joint_valid[1:, 1:].all()
    named = load_pyskl(path, class_names=["a", "b", "c"], score_threshold=0.5)
    assert named[1].label_name == "b" and named[4].joint_valid.all()
    assert not named[0].joint_valid[:, 0].any() and named[0].joint_valid[1:, 1:].all()


def test_pyskl_layout_and_errors(tmp_path):
    path, _ = _pyskl_file(tmp_path, v=25)
    assert load_pyskl(path).layout == "ntu25"
    assert len(load_dataset(path, test_split="xsub_train")) == 3  # clips listed twice: train
    with pytest.raises(FinetecError, match="unknown data set"):
        load_dataset("kinetics")
    with pytest.raises(FinetecError, match="xsub_nope"):
        load_pyskl(path, test_split="xsub_nope")
    with pytest.raises(FinetecError, match="no annotation"):
        load_pyskl(path, train_split="xview_train", test_split="xview_train")
    with pytest.raises(FinetecError, match="coco17"):
        load_pyskl(path, layout="coco17")
    with pytest.raises(FinetecError, match="class names"):
        load_pyskl(path, class_names=["only_one"])
    path, _ = _pyskl_file(tmp_path, v=18)
    with pytest.raises(FinetecError, match="18-joint"):
        load_pyskl(path)
    odd = tmp_path / "odd.pkl"
    odd.write_bytes(pickle.dumps({"annotations": []}))
    with pytest.raises(FinetecError, match=r"odd\.pkl"):
        load_pyskl(odd)
    with pytest.raises(FinetecError, match="not found"):
        load_pyskl(tmp_path / "nope.pkl")


# --------------------------------------------------------------------------- containers
def test_clip_checks_shapes():
    pos = np.zeros((4, 13, 2), np.float64)
    ok = Clip("a", pos, np.ones((4, 13), bool), 0, "x", "train", 30.0, "penn13")
    assert ok.positions.dtype == np.float32 and ok.duration == pytest.approx(4 / 30)
    assert np.allclose(ok.timestamps(), [0, 1 / 30, 2 / 30, 3 / 30]) and ok.frame_valid.all()
    pos[0, 0, 0] = 5.0
    assert ok.positions[0, 0, 0] == 0.0  # the clip holds its own copy
    with pytest.raises(ValueError, match="joint_valid"):
        Clip("a", pos, np.ones((4, 12), bool), 0, "x", "train", 30.0, "penn13")
    with pytest.raises(ValueError, match=r"\(T, V, 2\)"):
        Clip("a", np.zeros((4, 13, 3)), np.ones((4, 13), bool), 0, "x", "train", 30.0, "penn13")
    with pytest.raises(ValueError, match="layout"):
        Clip("a", pos, np.ones((4, 13), bool), 0, "x", "train", 30.0, "coco17")
    with pytest.raises(ValueError, match="split"):
        Clip("a", pos, np.ones((4, 13), bool), 0, "x", "val", 30.0, "penn13")
    with pytest.raises(ValueError, match="fps"):
        Clip("a", pos, np.ones((4, 13), bool), 0, "x", "test", 0.0, "penn13")
    with pytest.raises(ValueError, match="class_names"):
        ClipSet("s", (ok,), ("y",), "penn13")
