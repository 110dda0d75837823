"""The evaluation (finetec_live.learning.evaluate / protocol / reports) on real Penn Action
test clips: masks, metrics, reports, and tools/evaluate.py's command line.

Untrained in-memory recognizers check the mechanics (same masks for every
method, one forward pass equal to ``classify``/``complete``, the interpolation
baseline); the shipped model, when it is in the tree, is evaluated for real on
a small subset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _tools import load_tool

from finetec_live.data import PENN_CLASSES
from finetec_live.data.corruption import Corruption, missing_count
from finetec_live.learning import evaluate as ev
from finetec_live.learning import protocol as evaluation
from finetec_live.learning import reports

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "weights" / "penn.pt"



def _untrained(method: str, seed: int = 0):
    import torch

    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.models import FinetecNet, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=len(PENN_CLASSES), method=method)
    return Recognizer(FinetecNet(cfg).eval(), cfg, "penn13", list(PENN_CLASSES),
                      model_id=f"untrained-{method}")


@pytest.fixture(scope="module")
def clips(data_root):
    test, names, layout = evaluation.load_test_clips("penn", str(data_root), limit=24)
    assert layout == "penn13" and names == list(PENN_CLASSES)
    assert all(c.split == "test" for c in test)
    return test


@pytest.fixture(scope="module")
def recs():
    import torch

    torch.set_num_threads(2)
    return {"zero": _untrained("stgcn-zero"), "interp": _untrained("stgcn-interp")}


def test_official_test_split_sizes(data_root):
    penn, _, _ = evaluation.load_test_clips("penn", str(data_root))
    jh, jnames, jlayout = evaluation.load_test_clips("jhmdb", str(data_root))
    assert len(penn) == 1068 and len(jh) == 176
    assert jlayout == "jhmdb15" and len(jnames) == 14


@pytest.mark.parametrize("spec", ["clean", "random:0.75", "native:0.5", "burst:0.6:3",
                                  "tail:0.5"])
def test_protocol_masks_are_exact_and_reproducible(clips, spec):
    c = Corruption.parse(spec)
    a = evaluation.build_protocol(clips, spec, 64, "penn13", seed=0)
    b = evaluation.build_protocol(clips, spec, 64, "penn13", seed=0)
    assert a.mask_digest == b.mask_digest
    for ma, mb, clip in zip(a.frame_masks, b.frame_masks, clips, strict=True):
        np.testing.assert_array_equal(ma, mb)
        n = clip.num_frames if c.on_native_frames else 64
        assert ma.shape == (n,)
        assert (~ma).sum() == (0 if c.is_clean else missing_count(n, c.rate))
    if c.kind == "tail":
        assert all(not m[32:].any() and m[:32].all() for m in a.frame_masks)
    for g in a.groups:
        # window protocols are resampled to 64 frames; native ones keep the clip's length
        want = {clips[i].num_frames for i in g.index} if c.on_native_frames else {64}
        assert want == {g.positions.shape[1]}
        # removed frames hold zeros, are invalid, and are scored where ground truth exists
        assert np.all(g.positions[~g.joint_valid] == 0)
        assert not np.any(g.joint_valid & g.missing)
        assert np.all(g.scale > 0)
    if not c.is_clean:
        other = evaluation.build_protocol(clips, spec, 64, "penn13", seed=1)
        assert (other.mask_digest != a.mask_digest) == (c.kind != "tail")


def test_same_masks_for_every_method(clips, recs):
    res = ev.run_evaluation([], "penn", ["random:0.5", "burst:0.3:3"], progress=False,
                            recognizers=recs, clips=clips)
    digests = res["mask_digests"]
    again = ev.run_evaluation([], "penn", ["random:0.5", "burst:0.3:3"], progress=False,
                              recognizers={"interp": recs["interp"]}, clips=clips)
    assert again["mask_digests"] == digests
    for spec in ("random:0.5", "burst:0.3:3"):
        counts = {m["results"][spec]["missing_joints"] for m in res["methods"].values()}
        assert len(counts) == 1 and counts.pop() > 0  # every method scored on the same joints
        for m in res["methods"].values():
            r = m["results"][spec]
            assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["mean_class"] <= 1.0


@pytest.mark.parametrize("spec", ["burst:0.6:3", "native:0.5"])
def test_one_forward_equals_classify_and_complete(clips, spec):
    rec = _untrained("finetec")
    inputs = evaluation.build_protocol(clips[:10], spec, rec.T, "penn13")
    g = inputs.groups[0]
    from finetec_live.inference.recognizer import map_to_frames

    # the evaluation's path: prepared batch, chunked forward, map back to the frames
    batch = ev.prepared_batch(rec, inputs)
    probs, grid = ev.forward_batch(rec, batch, batch_size=4)
    n = len(g)
    comp = map_to_frames(grid[:n], batch.timestamps[:n], g.timestamps, g.positions,
                         g.frame_valid[..., None] & g.joint_valid)
    probs = probs[:n]
    np.testing.assert_allclose(probs, rec.classify(g.positions, g.frame_valid, g.joint_valid,
                                                   g.timestamps), atol=1e-6)
    np.testing.assert_allclose(comp, rec.complete(g.positions, g.frame_valid, g.joint_valid,
                                                  g.timestamps), atol=1e-3)


@pytest.mark.parametrize("spec", ["random:0.75", "burst:0.6:3", "tail:0.5"])
def test_interpolation_baseline_equals_pure_interpolation(clips, recs, spec):
    """A method whose completion is pure interpolation scores exactly the baseline."""
    inputs = evaluation.build_protocol(clips, spec, 64, "penn13")
    base, count = evaluation.interpolation_error(inputs, "penn13")
    got = ev.evaluate_method(recs["interp"], inputs, len(PENN_CLASSES))
    assert count > 0 and got["missing_joints"] == count
    assert got["completion_error"] == pytest.approx(base, rel=1e-4)
    # zero filling is far worse than interpolation
    zero = ev.evaluate_method(recs["zero"], inputs, len(PENN_CLASSES))
    assert zero["completion_error"] > 2 * base
    # the baseline agrees with interpolate_missing in the caller's units wherever a joint
    # was seen somewhere in its window
    from finetec_live.inference.preprocess import interpolate_missing

    g = inputs.groups[0]
    ours = evaluation.interpolate_window(g.positions, g.frame_valid, g.joint_valid, "penn13")
    plain = interpolate_missing(g.positions, g.frame_valid, g.joint_valid)
    seen = g.joint_valid.any(axis=1)[:, None, :].repeat(g.positions.shape[1], 1)
    np.testing.assert_allclose(ours[seen], plain[seen], atol=1e-2)


def test_metrics_on_known_values():
    probs = np.eye(3, dtype=np.float32)[[0, 1, 1, 2]]  # predictions 0, 1, 1, 2
    labels = np.array([0, 1, 2, 2])
    top1, mean_class = evaluation.accuracies(probs, labels, 3)
    assert top1 == pytest.approx(0.75)
    assert mean_class == pytest.approx((1 + 1 + 0.5) / 3)
    truth = np.zeros((2, 4, 3, 2), np.float32)
    comp = truth.copy()
    comp[..., 0] += 3.0  # 3 units off everywhere
    missing = np.zeros((2, 4, 3), bool)
    missing[0, 1, 2] = missing[1, 3, 0] = True
    total, count = evaluation.completion_error_sums(comp, truth, missing, np.array([1.5, 3.0]))
    assert count == 2 and total == pytest.approx(3 / 1.5 + 3 / 3.0)


def test_reports(tmp_path, clips, recs):
    res = ev.run_evaluation([], "penn", ["clean", "random:0.5", "native:0.5", "tail:0.5"],
                            progress=False, recognizers=recs, clips=clips[:12])
    paths = reports.write_reports(res, tmp_path / "penn_eval")
    data = json.loads(paths[0].read_text())
    assert set(data["methods"]) == {"zero", "interp"}
    assert data["interpolation"]["clean"]["missing_joints"] == 0
    md = paths[1].read_text()
    for spec in ("clean", "random:0.5", "native:0.5", "tail:0.5", reports.INTERP):
        assert spec in md
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[2].stat().st_size > 5000


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped Penn weights not in the tree yet")
def test_shipped_model_on_a_penn_subset(data_root):
    from finetec_live.inference.recognizer import Recognizer

    rec = Recognizer.from_checkpoint("penn", device="cpu")
    clips, _, _ = evaluation.load_test_clips("penn", str(data_root), limit=60)
    specs = ["clean", "random:0.75", "burst:0.6:3", "tail:0.5"]
    res = ev.run_evaluation([], "penn", specs, progress=False, recognizers={"ours": rec},
                            clips=clips)
    r = res["methods"]["ours"]["results"]
    for s in specs:
        assert 0.0 <= r[s]["top1"] <= 1.0 and 0.0 <= r[s]["mean_class"] <= 1.0
    assert r["clean"]["top1"] > 0.8  # chance is 1/15
    for s in specs[1:]:  # one clip of slack: 60 clips, a corrupted run may get one lucky
        assert r["clean"]["top1"] >= r[s]["top1"] - 1 / 60 - 1e-9
        assert r[s]["completion_error"] is not None and r[s]["completion_error"] > 0


def test_merge_separate_runs(clips, recs):
    from finetec_live.errors import FinetecError

    kw = {"progress": False, "clips": clips[:8]}
    a = ev.run_evaluation([], "penn", ["clean", "burst:0.6:3"], recognizers={"a": recs["zero"]},
                          **kw)
    b = ev.run_evaluation([], "penn", ["burst:0.6:3"], recognizers={"b": recs["interp"]}, **kw)
    merged = reports.merge_results([a, b])
    assert list(merged["methods"]) == ["a", "b"] and merged["primary"] == "a"
    assert merged["protocols"] == ["clean", "burst:0.6:3"]
    assert "| b |" in reports.markdown_table(merged)
    other = ev.run_evaluation([], "penn", ["burst:0.6:3"], recognizers={"c": recs["interp"]},
                              seed=1, **kw)
    with pytest.raises(FinetecError, match="seed"):
        reports.merge_results([a, other])
    other["seed"] = a["seed"]  # same label, other masks: still refused
    with pytest.raises(FinetecError, match="masks"):
        reports.merge_results([a, other])


def test_results_name_checkpoints_by_hash_and_stages(data_root):
    """A checkpoint is named by its file's SHA-256 and the runs that made it, not a path."""
    from finetec_live.inference.checkpoint import file_sha256

    clips, _, _ = evaluation.load_test_clips("penn", str(data_root), limit=4)
    res = ev.run_evaluation([("ours", "penn")], "penn", ["clean"], progress=False,
                            clips=clips)
    m = res["methods"]["ours"]
    assert m["sha256"] == file_sha256("penn") and len(m["sha256"]) == 64
    assert m["shipped"] == "models/weights/penn.pt" and m["model_id"].startswith("penn-")
    commands = [st["command"] for st in m["stages"]]
    assert len(commands) >= 5 and any("--completion-bank 1024" in c for c in commands)
    assert "tools/calibrate.py" in commands[-1]  # the last run: the open-set calibration
    assert "checkpoint" not in m
    md = reports.report_text(res)
    assert m["sha256"][:16] in md and "--completion-bank 1024" in md


def test_command_line_merges_and_fails_in_one_line(tmp_path, clips, recs, capsys):
    cli = load_tool("evaluate")
    kw = {"progress": False, "clips": clips[:6]}
    a = ev.run_evaluation([], "penn", ["clean"], recognizers={"a": recs["zero"]}, **kw)
    b = ev.run_evaluation([], "penn", ["clean"], recognizers={"b": recs["interp"]}, **kw)
    for name, r in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    out = tmp_path / "merged"
    assert cli.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                     "--label", "b=interp", "--out", str(out), "--quiet"]) == 0
    merged = json.loads(out.with_suffix(".json").read_text())
    assert list(merged["methods"]) == ["a", "interp"]
    capsys.readouterr()
    assert cli.main(["--merge", str(tmp_path / "none.json"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_models_running_different_kernels_do_not_share_prepared_inputs():
    """A motion-only and a physics-only model need different kernel outputs: the
    evaluation's cache of prepared windows must keep them apart."""
    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.learning.evaluate import _prepare_key
    from finetec_live.models import FinetecNet, ModelConfig

    recs = []
    for decomposition, physics in ((True, False), (False, True)):
        cfg = ModelConfig(num_classes=15, layout="penn13", decomposition=decomposition,
                          physics=physics, completion=False)
        recs.append(Recognizer(FinetecNet(cfg).eval(), cfg, "penn13",
                               [str(k) for k in range(15)]))
    assert _prepare_key(recs[0]) != _prepare_key(recs[1])


def test_an_evaluation_says_which_command_on_which_code_made_it(tmp_path):
    cli = load_tool("evaluate")
    out = tmp_path / "e"
    assert cli.main(["--checkpoint", "penn", "--limit", "15", "--protocols", "clean",
                     "--out", str(out), "--quiet", "--threads", "1"]) == 0
    made = json.loads(out.with_suffix(".json").read_text())["made_by"]
    assert made["command"].startswith("python tools/evaluate.py --checkpoint penn --limit 15")
    assert made["date"] and "git_dirty" in made
    if (ROOT / ".git").exists():
        assert len(made["git_commit"]) == 40


def test_the_annotated_joint_convention_gives_occluded_joints_to_the_model(tmp_path):
    from finetec_live.learning.protocol import load_test_clips

    vis, _, _ = load_test_clips("penn", limit=40)
    ann, _, _ = load_test_clips("penn", limit=40, joints="annotated")
    more = sum(int(a.joint_valid.sum() - v.joint_valid.sum()) for a, v in zip(ann, vis,
                                                                                strict=True))
    assert more > 0 and all(np.all(a.joint_valid >= v.joint_valid) for a, v in zip(ann, vis,
                                                                                   strict=True))
    cli = load_tool("evaluate")
    out = tmp_path / "a"
    assert cli.main(["--checkpoint", "penn", "--joints", "annotated", "--limit", "15",
                     "--protocols", "clean", "--out", str(out), "--quiet", "--threads",
                     "1"]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["joints"] == "annotated" and "annotated positions" in out.with_suffix(
        ".md").read_text()
    from finetec_live.errors import FinetecError

    with pytest.raises(FinetecError, match="Penn Action convention"):
        load_test_clips("jhmdb", joints="annotated")
