"""A short real training run on Penn Action, resume, refits, every method/switch, the stage
records, the validation split and the training windows' completion target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tools import load_tool

from finetec_live import Recognizer
from finetec_live.data import load_penn_action
from finetec_live.errors import FinetecError
from finetec_live.learning.options import TrainOptions
from finetec_live.learning.refit import refit_completion
from finetec_live.learning.train import train as run_training
from finetec_live.learning.windows import (
    VAL_SEED,
    Sampler,
    initial_prototypes,
    long_gap_mask,
    make_batch,
    prototype_windows,
    split_train_val,
)
from finetec_live.models import ModelConfig
from finetec_live.skeleton.layouts import get_layout

TINY = ["--channels", "24", "32", "--strides", "2", "2", "--threads", "1", "--quiet"]
TINY_OPTS = {"channels": (24, 32), "strides": (2, 2), "threads": 1, "quiet": True}


class _Train:
    """``main(argv)`` of tools/train.py through the package: the options the command line
    would give, run by :func:`run_training` / :func:`refit_completion`."""

    def __init__(self) -> None:
        self.cli = load_tool("train")

    def main(self, argv) -> int:
        opts = TrainOptions(**vars(self.cli.parse_args(argv)))
        command = "python tools/train.py " + " ".join(argv)
        try:
            if opts.refit_completion is not None:
                refit_completion(opts, command)
            else:
                run_training(opts, command)
        except FinetecError:
            return 2
        return 0


train = _Train()


def test_short_training_learns_penn_subset(tmp_path):
    out = tmp_path / "small.pt"
    rc = train.main(["--subset", "165", "--epochs", "12", "--batch-size", "16", "--lr", "3e-3",
                     "--mask-prob", "0.3", "--crop-prob", "0", "--seed", "1", "--out", str(out),
                     *TINY])
    assert rc == 0
    ck = torch.load(out, weights_only=True)
    for key in ("format", "state_dict", "config", "layout", "class_names", "normalization",
                "prior", "window_seconds", "hop_seconds", "command", "train_seconds", "epoch",
                "optimizer", "stages", "validation"):
        assert key in ck, key
    assert ck["epoch"] == 12 and ck["layout"] == "penn13" and len(ck["class_names"]) == 15
    assert ck["prior"].shape == (64, 13, 2)
    assert "--subset 165" in ck["command"]
    # the test split is not scored by training; validation (15 held-out training clips,
    # one per class) is, on the evaluation's windows. 15 classes: chance is 6.7 %
    assert "test_clean_accuracy" not in ck
    assert ck["validation"] == {"fraction": 0.1, "clips": 15}
    last = ck["history"][-1]
    assert last["val_clean"] > 30.0 and 0.0 <= last["val_burst60"] <= 100.0, last
    # the recognizer gives the same verdicts on real test clips
    rec = Recognizer.from_checkpoint(out, device="cpu")
    test = load_penn_action().test()
    clips = [test[i] for i in range(0, len(test), 53)]
    right = 0
    for c in clips:
        p = rec.classify(c.positions[None], np.ones((1, c.num_frames), bool), c.joint_valid[None])
        right += int(p.argmax() == c.label)
    assert right / len(clips) > 0.3


@pytest.mark.parametrize("flags", [["--method", "stgcn-zero"], ["--method", "stgcn-interp"],
                                   ["--no-completion"], ["--no-decomposition"], ["--no-physics"],
                                   ["--no-completion", "--no-decomposition", "--no-physics"]])
def test_every_method_and_switch_trains(tmp_path, flags):
    out = tmp_path / "m.pt"
    assert train.main(["--subset", "24", "--epochs", "1", "--batch-size", "12",
                       "--out", str(out), *TINY, *flags]) == 0
    rec = Recognizer.from_checkpoint(out, device="cpu")
    cfg = rec.config
    if "--method" in flags:
        assert cfg.method == flags[1] and not rec.uses_completion
    else:
        assert cfg.completion == ("--no-completion" not in flags)
        assert cfg.decomposition == ("--no-decomposition" not in flags)
        assert cfg.physics == ("--no-physics" not in flags)


def test_resume_continues_the_same_run(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    args = ["--subset", "24", "--batch-size", "12", "--val-fraction", "0", *TINY]
    assert train.main([*args, "--epochs", "2", "--out", str(a)]) == 0
    assert train.main([*args, "--epochs", "1", "--out", str(b)]) == 0
    assert train.main([*args, "--epochs", "2", "--out", str(b), "--resume", str(b)]) == 0
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    assert torch.load(b, weights_only=True)["epoch"] == 2
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-4), k
    # resuming with another configuration is refused with one clear line
    assert train.main([*args, "--epochs", "3", "--out", str(b), "--resume", str(b),
                       "--no-physics"]) == 2


def test_refit_completion_then_frozen_fine_tune(tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    args = ["--subset", "24", "--batch-size", "12", "--val-fraction", "0", *TINY]
    assert train.main([*args, "--epochs", "1", "--out", str(a)]) == 0
    # stage 2: completion alone, the rest frozen
    assert train.main([*args, "--epochs", "1", "--refit-completion", str(a),
                       "--out", str(b)]) == 0
    sa = torch.load(a, weights_only=True)["state_dict"]
    ckb = torch.load(b, weights_only=True)
    sb = ckb["state_dict"]
    assert "refit_history" in ckb
    # every run appends its own record to the checkpoint's stages
    stages = ckb["stages"]
    assert [s["command"].split()[2] for s in stages] == ["--subset", "--subset"]
    assert "--refit-completion" in stages[1]["command"] and stages[1]["seconds"] > 0
    assert stages[0]["changed"].startswith("joint training of every weight, from scratch")
    assert stages[1]["changed"].startswith("completion refit: the completion module only")
    for s in stages:
        assert {"command", "seconds", "git_commit", "date", "changed", "options"} <= set(s)
        assert s["git_commit"] is None or len(s["git_commit"]) == 40
    assert stages[1]["options"]["refit_completion"] == str(a)
    changed = {k for k in sa if not torch.equal(sa[k], sb[k])}
    assert changed and all(k.startswith("completion.") for k in changed), changed
    # stage 3: everything but completion, resumed
    assert train.main([*args, "--epochs", "2", "--resume", str(b), "--freeze-completion",
                       "--out", str(c)]) == 0
    ckc = torch.load(c, weights_only=True)
    sc = ckc["state_dict"]
    assert len(ckc["stages"]) == 3 and "everything but the completion module" in ckc[
        "stages"][2]["changed"]
    for k in sb:
        if k.startswith("completion."):
            assert torch.equal(sb[k], sc[k]), k
    assert any(not torch.equal(sb[k], sc[k]) for k in sb if k.startswith("backbone."))


def test_long_gap_masks_are_contiguous_and_long():
    rng = np.random.default_rng(0)
    for _ in range(200):
        frames, joints = long_gap_mask(64, 13, rng)
        missing = ~frames
        assert 0.25 * 64 <= missing.sum() <= 0.85 * 64
        runs = np.count_nonzero(np.diff(np.r_[0, missing.astype(int), 0]) == 1)
        assert 1 <= runs <= 4  # a few contiguous gaps, never scattered frames
        assert not joints[missing].any()


def _train_then_refit(tmp_path, args, refit):
    """A one-epoch model with a small completion, then ``--refit-completion`` of it."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert train.main([*args, "--epochs", "1", "--completion-hidden", "32", "--out",
                       str(a)]) == 0
    assert train.main([*args, "--refit-completion", str(a), *refit, "--out", str(b)]) == 0
    return a, b


def test_grown_completion_starts_where_the_old_one_ended(tmp_path):
    args = ["--subset", "24", "--batch-size", "12", "--val-fraction", "0", *TINY]
    a, b = _train_then_refit(tmp_path, args, [
        "--epochs", "1", "--lr", "0", "--grow-completion", "--completion-blocks", "4",
        "--completion-dilation-cycle", "4", "--completion-attention", "1",
        "--val-fraction", "0.2", "--gap-prob", "0.5"])
    ra, rb = Recognizer.from_checkpoint(a), Recognizer.from_checkpoint(b)
    assert rb.model.cfg.completion_blocks == 4 and rb.model.cfg.completion_attention == 1
    assert "val_burst60_ratio" in torch.load(b, weights_only=True)["refit_history"][-1]
    clip = load_penn_action().test()[0]
    pos = clip.positions[None, :64]
    fv = np.ones((1, pos.shape[1]), bool)
    fv[:, 10:30] = False
    # lr 0: the new blocks are still identities, so the completion is unchanged
    assert np.allclose(ra.complete(pos, fv), rb.complete(pos, fv), atol=1e-4)
    with pytest.raises(FinetecError, match="grow-completion"):
        refit_completion(TrainOptions(**vars(train.cli.parse_args(
            [*args, "--refit-completion", str(a), "--grow-completion", "--completion-blocks",
             "2", "--out", str(b)]))), "x")


def test_refit_adds_a_prototype_bank_and_fits_its_gate(tmp_path):
    args = ["--subset", "30", "--batch-size", "10", "--val-fraction", "0", *TINY]
    a, b = _train_then_refit(tmp_path, args, [
        "--epochs", "2", "--lr", "0.05", "--completion-bank", "12", "--completion-bank-k", "3",
        "--bank-only", "--bank-split", "--bank-crops", "1"])
    sa = torch.load(a, weights_only=True)["state_dict"]
    ckb = torch.load(b, weights_only=True)
    sb = ckb["state_dict"]
    assert ckb["config"]["completion_bank"] == 12 and ckb["config"]["completion_bank_k"] == 3
    protos = sb["completion.bank.protos"]
    assert protos.shape == (12, 64, 13, 2) and protos.abs().sum() > 0  # k-means centroids
    assert not torch.equal(sb["completion.gate"], torch.tensor([2.0, np.log(4.0)]))
    # --bank-only: the mixer and everything else are the base's
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k != "completion.prior")
    rb = Recognizer.from_checkpoint(b)
    clip = load_penn_action().test()[0]
    fv = np.ones(clip.num_frames, bool)
    fv[5:40] = False
    done = rb.complete(clip.positions, fv, clip.joint_valid)
    assert np.isfinite(done).all() and done.shape == clip.positions.shape


def test_prototype_windows_are_normalised_and_mirrored():
    clips = list(load_penn_action().train())[:6]
    w, ids = prototype_windows(clips, 64, "penn13", np.random.default_rng(0), 2, (1.2, 3.5))
    short = sum(c.num_frames <= round(1.2 * c.fps) for c in clips)  # no crops of those
    assert len(w) == len(ids) and np.isfinite(w).all()
    assert 2 * (6 + 2 * (6 - short)) >= len(w) >= 2 * 6
    half = len(w) // 2
    flip = get_layout("penn13").flip_permutation()
    assert np.allclose(w[half:], w[:half][:, :, flip] * np.array([-1.0, 1.0]))
    assert np.array_equal(ids[half:], ids[:half]) and set(ids) == set(range(6))
    assert np.abs(w).max() < 10  # body-size units, not pixels


def test_every_prototype_averages_several_clips():
    clips = list(load_penn_action().train())[:40]
    w, ids = prototype_windows(clips, 64, "penn13", np.random.default_rng(0), 2, (1.2, 3.5))
    protos = initial_prototypes(w, ids, 30, seed=0)
    assert protos.shape == (30, 64, 13, 2)
    flat = w.reshape(len(w), -1).astype(np.float64)
    for p in protos.reshape(30, -1):
        # never a training window itself (plain k-means leaves 3 of these 30 as one)
        assert np.sqrt(((flat - p) ** 2).mean(1)).min() > 1e-4


def test_frames_dropped_at_the_native_rate_are_supervised():
    """The completion target holds the clean clip on every slot of the grid, also where the
    frames were dropped at the native rate before resampling."""
    clips = [c for c in load_penn_action().train() if c.joint_valid.all()][:12]
    sampler = Sampler(clips, "penn13", 64, np.random.default_rng(3), crop_prob=0.0,
                      crop_seconds=(1.2, 3.5), mask_prob=0.0, native_prob=1.0)
    tb = sampler.batch(np.arange(len(clips)))
    dropped = ~tb.frame_valid  # slots with no native frame after the native-rate drop
    assert dropped.sum() > 50
    # the clip has every joint (augmentation may hide some from the input, not the target)
    assert tb.clean_valid.all()
    cfg = ModelConfig(num_classes=15, channels=(24, 32), strides=(2, 2))
    batch, target, tvalid = make_batch(cfg, "penn13", tb)
    assert (tvalid[dropped] == 1).all()  # before: fv & jv, zero on every dropped slot
    want = (tb.clean - batch.centre[:, None, None]) / batch.scale[:, None, None, None]
    np.testing.assert_allclose(target, want, atol=1e-5)
    # the clean windows lie on the same grid as the jittered input: close where observed
    seen = tb.frame_valid[..., None] & tb.joint_valid
    err = np.linalg.norm(tb.clean - tb.positions, axis=-1)[seen]
    assert np.median(err) < 0.05 * np.median(sampler.scales)
    # and the dropped slots are where completion is scored (missing in the model's input)
    assert (batch.mask[dropped] == 0).all()


def test_validation_split_is_stratified_seeded_and_fixed():
    clips = list(load_penn_action().train())
    tr, val = split_train_val(clips, 0.1)
    assert len(tr) + len(val) == len(clips) and not {c.name for c in tr} & {c.name for c in val}
    labels = np.array([c.label for c in clips])
    for k in range(15):
        assert sum(c.label == k for c in val) == max(1, round(0.1 * (labels == k).sum()))
    # the same clips whatever else changes (fixed seed), another seed gives others
    assert [c.name for c in split_train_val(clips, 0.1)[1]] == [c.name for c in val]
    other = split_train_val(clips, 0.1, seed=VAL_SEED + 1)[1]
    assert [c.name for c in other] != [c.name for c in val]
    # a class with a single clip keeps it for training
    one = [c for c in clips if c.label == 0][:1] + [c for c in clips if c.label == 1][:4]
    tr1, val1 = split_train_val(one, 0.5)
    assert one[0] in tr1 and len(val1) == 2


def test_validation_scores_what_the_evaluation_scores():
    """Validation during training runs the evaluation's own windows and metrics."""
    from finetec_live.learning.evaluate import evaluate_method
    from finetec_live.learning.protocol import build_protocol
    from finetec_live.learning.validation import Validator
    from finetec_live.models import FinetecNet

    clips = list(load_penn_action().train())[::150]
    torch.manual_seed(0)
    model = FinetecNet(ModelConfig(num_classes=15, channels=(24, 32), strides=(2, 2))).train()
    names = list(load_penn_action().class_names)
    got = Validator(clips, "penn13", names).evaluate(model, "cpu", ["burst:0.6:3"])
    assert model.training  # put back as it was
    rec = Recognizer(model.eval(), model.cfg, "penn13", names)
    want = evaluate_method(rec, build_protocol(clips, "burst:0.6:3", 64, "penn13"), 15)
    for k in ("top1", "mean_class", "completion_error", "missing_joints"):
        assert got["burst:0.6:3"][k] == pytest.approx(want[k], rel=1e-5), k


def test_command_line_errors_are_one_line(tmp_path, capsys):
    cli = load_tool("train")
    assert cli.main(["--refit-completion", str(tmp_path / "none.pt"), "--out",
                     str(tmp_path / "x.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: model checkpoint") and "not found" in err[-1]


def test_subset_is_round_robin_over_classes_for_training_and_refit():
    from finetec_live.learning.train import balanced_subset

    clips = list(load_penn_action().train())
    sub = balanced_subset(clips, 20)
    assert [c.label for c in sub] == [*range(15), *range(5)]
    firsts = [next(c for c in clips if c.label == k) for k in range(15)]
    assert sub[:15] == firsts  # each class's clips in their order


def test_fine_tune_from_weights_with_both_conventions_and_outlier_exposure(tmp_path):
    """--init starts from a checkpoint's weights with a fresh schedule; --reveal-prob,
    --estimator-prob, --tempo-prob and --outliers train; the completion stays frozen."""
    from finetec_live.inference.checkpoint import resolve_checkpoint

    base = resolve_checkpoint("penn")
    out = tmp_path / "ft.pt"
    assert train.main(["--init", str(base), "--freeze-completion", "--subset", "30",
                       "--batch-size", "10", "--epochs", "1", "--val-fraction", "0.2",
                       "--reveal-prob", "0.5", "--estimator-prob", "1", "--tempo-prob", "1",
                       "--outliers", "jhmdb", "--outlier-share", "0.3", "--threads", "1",
                       "--quiet", "--out", str(out)]) == 0
    ck = torch.load(out, weights_only=True)
    before = torch.load(base, weights_only=True)
    assert ModelConfig.from_dict(ck["config"]) == ModelConfig.from_dict(before["config"])
    from finetec_live.inference.checkpoint import checkpoint_stages

    assert ck["stages"][:-1] == checkpoint_stages(before)
    assert f"from the weights of {base}" in ck["stages"][-1]["changed"]
    rec = ck["history"][-1]
    assert rec["outlier"] > 0 and "val_annotated_clean" in rec and "val_clean" in rec
    for k, v in before["state_dict"].items():
        if k.startswith("completion."):
            assert torch.equal(v, ck["state_dict"][k]), k
    assert any(not torch.equal(v, ck["state_dict"][k]) for k, v in before["state_dict"].items()
               if k.startswith("backbone."))
    assert train.main(["--init", str(base), "--dataset", "jhmdb", "--epochs", "1",
                       "--out", str(tmp_path / "x.pt"), "--quiet"]) == 2
