import numpy as np
import pytest

from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import (
    LAYOUTS,
    MEDIAPIPE33,
    PENN13,
    Layout,
    get_layout,
    map_layout,
    mapping_matrix,
)


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_layout_tables_are_consistent(layout):
    v = layout.num_joints
    assert len(set(layout.joints)) == v
    assert set(layout.regions) == {0, 1, 2, 3, 4}
    assert sum(layout.masses) == pytest.approx(1.0)
    assert layout.masses[layout.root] == 0.0
    assert all(m > 0 for k, m in enumerate(layout.masses) if k != layout.root)
    order = layout.topological_order()
    pos = {int(j): i for i, j in enumerate(order)}
    for k, p in enumerate(layout.parents):
        if p >= 0:
            assert pos[p] < pos[k]
    flip = layout.flip_permutation()
    assert sorted(flip) == list(range(v))
    assert np.array_equal(flip[flip], np.arange(v))
    for k in range(v):  # a mirror swaps the two arms and the two legs
        swapped = {1: 2, 2: 1, 3: 4, 4: 3}.get(layout.regions[k], layout.regions[k])
        assert layout.regions[flip[k]] == swapped
    a = layout.adjacency()
    assert np.array_equal(a, a.T) and a.trace() == 0
    # every joint is connected (tree edges are part of the drawing edges)
    assert (a.sum(1) > 0).all()


def test_left_right_regions_follow_names():
    for layout in LAYOUTS.values():
        for name, region in zip(layout.joints, layout.regions, strict=True):
            if name.startswith("left_") and region:
                assert region in (1, 3), (layout.name, name)
            if name.startswith("right_") and region:
                assert region in (2, 4), (layout.name, name)


def test_bad_tree_is_refused():
    with pytest.raises(ValueError, match="tree"):
        Layout("bad", ("a", "b", "c"), (-1, 2, 1), (0, 0, 0), (0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="root"):
        Layout("bad", ("a", "b"), (-1, -1), (0, 0), (0.0, 1.0))


def test_unknown_layout_is_a_user_error():
    with pytest.raises(FinetecError, match="unknown skeleton layout"):
        get_layout("nope")
    with pytest.raises(FinetecError, match="no mapping"):
        mapping_matrix("penn13", "coco17")


def test_mediapipe_to_penn_picks_named_landmarks():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(5, 33, 2)).astype(np.float32)
    valid = np.ones((5, 33), dtype=bool)
    out, ok = map_layout(pos, valid, MEDIAPIPE33, PENN13)
    idx = [0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    np.testing.assert_allclose(out, pos[:, idx])
    assert ok.all()
    for k, name in enumerate(PENN13.joints[1:], start=1):
        assert MEDIAPIPE33.joints[idx[k]] == name


def test_derived_joints_are_means_and_need_all_sources():
    pos = np.zeros((1, 33, 2), dtype=np.float32)
    pos[0, 11] = (0.0, 0.0)
    pos[0, 12] = (2.0, 0.0)
    pos[0, 23] = (0.0, 4.0)
    pos[0, 24] = (2.0, 4.0)
    valid = np.ones((1, 33), dtype=bool)
    out, ok = map_layout(pos, valid, "mediapipe33", "jhmdb15")
    np.testing.assert_allclose(out[0, 0], (1.0, 0.0))  # neck: between the shoulders
    np.testing.assert_allclose(out[0, 1], (1.0, 2.0))  # belly: between neck and pelvis
    valid[0, 12] = False
    out, ok = map_layout(pos, valid, "mediapipe33", "jhmdb15")
    assert not ok[0, 0] and not ok[0, 1] and not ok[0, 3]
    assert ok[0, 4]
    np.testing.assert_array_equal(out[0, 0], 0.0)
    assert np.isfinite(out).all()
