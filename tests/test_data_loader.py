"""finetec_live.data.load_dataset: one call shape for every data set, the set carries its name."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from finetec_live.data import ClipSet, load_dataset, load_jhmdb, load_penn_action, load_pyskl
from finetec_live.errors import FinetecError


def _tiny_pyskl(tmp_path, name="tiny_hrnet.pkl"):
    rng = np.random.default_rng(1)
    anns = [{"frame_dir": f"clip{i}", "label": i % 2,
             "keypoint": rng.uniform(1, 100, (1, 6, 17, 2)).astype(np.float32),
             "keypoint_score": np.full((1, 6, 17), 0.9, np.float32)} for i in range(4)]
    data = {"split": {"xsub_train": ["clip0", "clip1"], "xsub_val": ["clip2", "clip3"]},
            "annotations": anns}
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def test_named_sets_carry_their_names(penn, jhmdb, data_root):
    for spec in ("penn", "penn_action", "Penn"):
        cs = load_dataset(spec, data_root)
        assert cs is penn and cs.name == "penn"
    assert load_penn_action(data_root).name == "penn"
    assert penn.train().name == "penn:train"
    assert load_dataset("jhmdb", data_root) is jhmdb and jhmdb.name == "jhmdb"
    assert load_jhmdb(data_root).name == "jhmdb"


def test_reader_kwargs_reach_the_reader(penn, data_root):
    ann = load_dataset("penn", data_root, mask="annotated")
    assert ann is load_penn_action(data_root, mask="annotated") and ann is not penn
    assert ann.name == "penn" and len(ann) == len(penn)


@pytest.mark.parametrize("form", ["prefixed", "plain", "pathlike"])
def test_pyskl_specs(tmp_path, form):
    path = _tiny_pyskl(tmp_path)
    spec = {"prefixed": f"pyskl:{path}", "plain": str(path), "pathlike": path}[form]
    cs = load_dataset(spec)
    assert isinstance(cs, ClipSet) and cs.name == "tiny_hrnet"
    direct = load_pyskl(path)
    assert [c.name for c in cs] == [c.name for c in direct] == ["clip0", "clip1", "clip2", "clip3"]
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(cs, direct, strict=True))
    assert [c.split for c in cs] == ["train", "train", "test", "test"]
    assert len(load_dataset(spec, test_split="xsub_train")) == 2


def test_pyskl_prefix_takes_any_file_name(tmp_path):
    path = _tiny_pyskl(tmp_path, name="ntu60_2d.pickle")
    assert load_dataset(f"pyskl:{path}").name == "ntu60_2d"
    with pytest.raises(FinetecError, match="unknown data set"):
        load_dataset(str(path))  # without the prefix only .pkl means PYSKL


@pytest.mark.parametrize("spec", ["pyskl:", "pyskl:  "])
def test_pyskl_prefix_without_a_path(spec):
    with pytest.raises(FinetecError, match=r"names no file; write pyskl:PATH"):
        load_dataset(spec)


def test_unknown_spec_names_the_choices():
    with pytest.raises(FinetecError, match=r"unknown data set 'kinetics'; use penn, jhmdb, "
                                           r"pyskl:PATH"):
        load_dataset("kinetics")


def test_the_package_exports_every_reader_and_constant():
    import finetec_live.data as data

    for name in ("Clip", "ClipSet", "SPLITS", "load_dataset", "load_penn_action", "load_jhmdb",
                 "load_pyskl", "PENN_CLASSES", "PENN_FPS", "PENN_MASKS", "PENN_PLACEHOLDER_MAX",
                 "JHMDB_CLASSES", "JHMDB_FPS", "RestrictedUnpickler", "safe_load_pickle",
                 "data_root", "ENV_VAR"):
        assert name in data.__all__ and hasattr(data, name), name
    assert data.SPLITS == ("train", "test") and data.PENN_MASKS == ("visibility", "annotated")


def test_pyskl_counts_the_clips_it_leaves_out(tmp_path, caplog):
    path = _tiny_pyskl(tmp_path)
    caplog.set_level(logging.INFO, logger="finetec_live.data.pyskl")
    cs = load_dataset(path, train_split="xsub_train", test_split="xsub_train")
    assert [c.name for c in cs] == ["clip0", "clip1"]
    assert "2 annotations in neither xsub_train nor xsub_train left out" in caplog.text
