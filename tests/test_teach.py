"""``finetec-train``: the real command, end to end, on a few shared clips and on a small
PYSKL file the test writes; its parts; its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from finetec_live import Recognizer
from finetec_live.data import Clip
from finetec_live.data.pyskl import load_pyskl, save_pyskl
from finetec_live.errors import FinetecError
from finetec_live.inference.openset import OPEN_SET_LABELS
from finetec_live.skeleton.layouts import PENN_HEAD_RAISE, map_layout
from finetec_live.teach import collect, others
from finetec_live.teach.run import live_window
from tests._tools import load_tool

# short real videos of two exercises (2-10 s each), for the folder end to end
FOLDER_VIDEOS = {"bicep_curl": ("kshitij_side_curl.mp4", "diya_db_curl.mp4"),
                 "shoulder_press": ("kshitij_seated_db_press.mp4", "kshitij_barbell_press.mp4")}


def _run(module, args, timeout=600):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=os.environ)


def _train(args, timeout=600):
    return _run("finetec_live.cli.train", args, timeout)


def _one_error_line(r) -> str:
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return lines[-1]


# ----------------------------------------------------------------------------- parts
def test_same_action_names():
    assert others.same_action("Pull-Ups", "pullup")
    assert others.same_action("golf", "golf_swing")
    assert others.same_action("swing_baseball", "baseball_swing")
    assert others.same_action("squats", "squat")
    assert not others.same_action("push", "pushup")
    assert not others.same_action("shoulder_press", "bench_press")
    assert not others.same_action("bicep_curl", "clean_and_jerk")


def test_coco17_maps_to_penn13_with_the_head_raised():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(3, 17, 2)).astype(np.float32)
    out, valid = map_layout(pos, np.ones((3, 17), bool), "coco17", "penn13")
    assert valid.all()
    # Penn's sides: penn13's left shoulder is COCO's right shoulder (6), its right ankle
    # COCO's left ankle (15)
    np.testing.assert_allclose(out[:, 1], pos[:, 6], atol=1e-6)
    np.testing.assert_allclose(out[:, 12], pos[:, 15], atol=1e-6)
    mid = pos[:, 5:7].mean(1)
    np.testing.assert_allclose(out[:, 0] - mid, PENN_HEAD_RAISE * (pos[:, 0] - mid),
                               atol=1e-5)


def test_pyskl_written_and_read_back(tmp_path):
    rng = np.random.default_rng(1)
    clips = [Clip(name=f"c{i}", positions=rng.normal(size=(10 + i, 17, 2)),
                  joint_valid=rng.random((10 + i, 17)) > 0.2, label=i % 2,
                  label_name=("a", "b")[i % 2], split="train", fps=30.0, layout="coco17")
             for i in range(4)]
    path = save_pyskl(tmp_path / "f.pkl", clips, {"train": ["c0", "c1", "c2"], "test": ["c3"]})
    back = load_pyskl(path, train_split="train", test_split="test", class_names=["a", "b"])
    assert [c.name for c in back.train()] == ["c0", "c1", "c2"] and back.layout == "coco17"
    for a, b in zip(clips, back.clips, strict=True):
        np.testing.assert_array_equal(a.joint_valid, b.joint_valid)
        np.testing.assert_allclose(np.where(a.joint_valid[..., None], a.positions, 0),
                                   b.positions)


def test_long_clips_are_chunked_and_short_ones_kept_whole():
    long = Clip(name="v", positions=np.zeros((300, 13, 2)), joint_valid=np.ones((300, 13), bool),
                label=0, label_name="a", split="train", fps=30.0, layout="penn13")
    short = Clip(name="s", positions=np.zeros((40, 13, 2)), joint_valid=np.ones((40, 13), bool),
                 label=1, label_name="b", split="train", fps=30.0, layout="penn13")
    chunks = collect.chunk([long, short], 5.0, 1.25)
    assert [c.name for c in chunks] == ["v@0", "v@38", "v@76", "v@114", "s"]
    sparse = Clip(name="p", positions=np.zeros((300, 13, 2)),
                  joint_valid=np.arange(300)[:, None].repeat(13, 1) % 3 == 0, label=0,
                  label_name="a", split="train", fps=30.0, layout="penn13")
    assert collect.chunk([sparse], 5.0, 1.25) == [sparse]  # posed 1 frame in 3: kept whole
    assert all(c.num_frames == 150 for c in chunks if c.name.startswith("v@"))
    assert chunks[-1] is short


def test_the_live_window_follows_the_clips_durations():
    def data(seconds):
        return collect.TeachData("x", "folder", ["a"], [
            Clip(name=str(s), positions=np.zeros((round(30 * s), 13, 2)),
                 joint_valid=np.ones((round(30 * s), 13), bool), label=0, label_name="a",
                 split="train", fps=30.0, layout="penn13") for s in seconds])

    assert live_window(data([1.2, 1.3, 1.4]), None) == (1.3, 0.3)
    assert live_window(data([10, 20, 30]), None) == (2.5, 0.5)
    assert live_window(data([0.4, 0.5]), None) == (1.0, 0.2)
    assert live_window(data([10]), 4.0) == (4.0, 0.8)


# ----------------------------------------------------------------------------- end to end
def _small_pyskl(tmp_path, jhmdb, classes=("clap", "pullup", "wave"), train_per=4, test_per=2):
    fewshot = load_tool("fewshot")
    clips, split = [], {"train": [], "test": []}
    for name in classes:
        k = jhmdb.class_names.index(name)
        for part, n in (("train", train_per), ("test", test_per)):
            for c in [c for c in jhmdb.clips if c.label == k and c.split == part][:n]:
                pos, valid = fewshot.to_coco17(c)
                clips.append(Clip(name=c.name, positions=pos, joint_valid=valid,
                                  label=classes.index(name), label_name=name, split=part,
                                  fps=c.fps, layout="coco17"))
                split[part].append(c.name)
    pkl = save_pyskl(tmp_path / "small.pkl", clips, split)
    names = tmp_path / "names.txt"
    names.write_text("\n".join(classes) + "\n")
    return pkl, names, [c for c in clips if c.split == "test"]


@pytest.mark.slow
def test_finetec_train_on_a_pyskl_file(tmp_path, jhmdb):
    pkl, names, test = _small_pyskl(tmp_path, jhmdb)
    out = tmp_path / "mine.pt"
    r = _train([pkl, "--out", out, "--class-names", names, "--steps", 12, "--quiet",
                "--other-datasets", "penn"])
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "validation: " in r.stdout
    rec = Recognizer.from_checkpoint(out, device="cpu")
    assert rec.class_names == ["clap", "pullup", "wave"] and rec.open_set is not None
    assert rec.model_id.startswith("mine-finetec-")
    assert 1.0 <= rec.window_seconds <= 2.5
    rep = json.loads(out.with_suffix(".report.json").read_text())
    assert rep["kind"] == "pyskl" and rep["clips"]["train"] + rep["clips"]["validation"] == 12
    assert rep["validation"]["clips"] == 3  # one held out per class
    assert rep["clips"]["checkpoint_trained_on"] == 12  # then refitted on all
    assert rec.open_set.prototypes.shape == (3, rec.model.backbone.fc.in_features)
    assert out.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "| clap |" in out.with_suffix(".report.md").read_text()
    # the taught checkpoint keeps the base's completion
    base = Recognizer.from_checkpoint("penn", device="cpu")
    for k, v in base.model.completion.state_dict().items():
        assert np.array_equal(v.numpy(), rec.model.completion.state_dict()[k].numpy()), k
    c = test[0]
    pos, jv = map_layout(c.positions, c.joint_valid, "coco17", "penn13")
    labels = rec.label(pos[None], np.ones((1, len(pos)), bool), jv[None])
    assert labels[0] in (*rec.class_names, *OPEN_SET_LABELS)


@pytest.fixture(scope="module")
def taught_folder(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("teach")
    clips = root / "clips"
    for cls, files in FOLDER_VIDEOS.items():
        (clips / cls).mkdir(parents=True)
        for f in files:
            (clips / cls / f).symlink_to(data_root / "videos" / "custom" / cls / f)
    (clips / "bicep_curl" / "broken.mp4").write_bytes(b"not a video at all")
    (clips / "bicep_curl" / "notes.txt").write_text("what the coach said")
    (clips / "stray.mp4").write_bytes(b"")
    out = root / "mine.pt"
    r = _train([clips, "--out", out, "--steps", 12, "--quiet", "--other-datasets", "jhmdb",
                "--val-fraction", "0.5"], timeout=900)
    return {"root": root, "clips": clips, "out": out, "run": r}


@pytest.mark.slow
def test_finetec_train_on_a_folder_of_videos(taught_folder):
    r, out = taught_folder["run"], taught_folder["out"]
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.with_suffix(".report.json").read_text())
    assert rep["class_names"] == ["bicep_curl", "shoulder_press"]
    assert rep["clips"]["train"] == 2 and rep["clips"]["validation"] == 2
    assert rep["clips"]["checkpoint_trained_on"] == 4
    reasons = {os.path.basename(s["path"]): s["reason"] for s in rep["skipped"]}
    assert reasons.keys() == {"broken.mp4", "notes.txt", "stray.mp4"}
    assert "unreadable video" in reasons["broken.mp4"] and "not a video" in reasons["notes.txt"]
    assert "not in a class folder" in reasons["stray.mp4"]
    assert "skipped 3 inputs" in r.stdout
    cache = taught_folder["clips"] / collect.CACHE_NAME
    assert len(list(cache.glob("*.fkp"))) == 4


@pytest.mark.slow
def test_a_second_run_reuses_the_cached_poses(taught_folder, tmp_path):
    cache = taught_folder["clips"] / collect.CACHE_NAME
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob("*.fkp")}
    r = _train([taught_folder["clips"], "--out", tmp_path / "again.pt", "--steps", 2, "--quiet",
                "--other-datasets"])
    assert r.returncode == 0, r.stderr
    assert "4 of 5 videos already have poses" in r.stderr  # the broken one is retried
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.fkp")} == stamps


@pytest.mark.slow
def test_finetec_live_runs_the_taught_model(taught_folder):
    assert taught_folder["run"].returncode == 0
    rec = Recognizer.from_checkpoint(taught_folder["out"], device="cpu")
    recording = sorted((taught_folder["clips"] / collect.CACHE_NAME).glob("diya_db_curl*"))[0]
    r = _run("finetec_live.cli.live", ["--model", taught_folder["out"], "--keypoints",
                                       recording, "--fast", "--no-display", "--jsonl", "-",
                                       "--bind", "tcp://127.0.0.1:*"], timeout=300)
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(msgs) >= 5
    assert {m["model"] for m in msgs} == {rec.model_id}
    assert {m["label"] for m in msgs} <= {"bicep_curl", "shoulder_press", *OPEN_SET_LABELS}
    assert all(m["topk"][0][0] in ("bicep_curl", "shoulder_press") for m in msgs)


# ----------------------------------------------------------------------------- errors
def test_a_folder_without_class_folders(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    line = _one_error_line(_train([tmp_path, "--out", tmp_path / "m.pt"]))
    assert "no class folders" in line


def test_bad_shares_and_threads_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    for flag, value in (("--outlier-rejection", "1.5"), ("--threads", "-1"),
                        ("--val-fraction", "1")):
        line = _one_error_line(_train([tmp_path, "--out", tmp_path / "m.pt", flag, value]))
        assert flag in line


def test_a_missing_source_and_an_unwritable_output(tmp_path):
    assert "not found" in _one_error_line(_train([tmp_path / "nowhere", "--out",
                                                  tmp_path / "m.pt"]))
    (tmp_path / "a").mkdir()
    line = _one_error_line(_train([tmp_path, "--out", tmp_path / "no" / "such" / "m.pt"]))
    assert "does not exist" in line and "--out" in line
    line = _one_error_line(_train([tmp_path, "--out", tmp_path]))
    assert "is a folder" in line


def test_pyskl_files_without_a_train_split_or_with_too_few_clips(tmp_path, jhmdb):
    pkl, names, _ = _small_pyskl(tmp_path, jhmdb, train_per=1, test_per=1)
    line = _one_error_line(_train([pkl, "--out", tmp_path / "m.pt", "--class-names", names]))
    assert "too few clips" in line and "clap (1)" in line
    clip = Clip(name="x", positions=np.zeros((20, 17, 2)), joint_valid=np.ones((20, 17), bool),
                label=0, label_name="a", split="test", fps=30.0, layout="coco17")
    bad = save_pyskl(tmp_path / "nosplit.pkl", [clip], {"xsub_val": ["x"]})
    line = _one_error_line(_train([bad, "--out", tmp_path / "m.pt"]))
    assert "no split 'train'" in line
    (tmp_path / "names2.txt").write_text("a\na\n")
    line = _one_error_line(_train([pkl, "--out", tmp_path / "m.pt", "--class-names",
                                   tmp_path / "names2.txt"]))
    assert "twice" in line


def test_class_checks_in_the_library():
    d = collect.TeachData("x", "folder", ["a", "b"], [])
    with pytest.raises(FinetecError, match="no usable clip"):
        collect.check_classes(d, 2)
    one = collect.TeachData("x", "folder", ["a"], [Clip(
        name="c", positions=np.zeros((20, 13, 2)), joint_valid=np.ones((20, 13), bool),
        label=0, label_name="a", split="train", fps=30.0, layout="penn13")] * 3)
    with pytest.raises(FinetecError, match="at least two"):
        collect.check_classes(one, 2)
    with pytest.raises(FinetecError, match="nowhere"):
        collect.collect_folder("/nowhere")
