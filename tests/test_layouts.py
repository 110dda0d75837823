from dataclasses import replace

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
        name = layout.joints[k]  # and every joint named for a side (mouth_left too)
        if "left" in name or "right" in name:
            assert flip[k] != k and layout.joints[flip[k]] == (
                name.replace("left", "RIGHT").replace("right", "left").replace("RIGHT", "right"))
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
    # penn13's left_* joints take MediaPipe's right landmarks and vice versa (Penn's sides)
    idx = [0, 12, 11, 14, 13, 16, 15, 24, 23, 26, 25, 28, 27]
    limbs = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]  # taken as they are
    np.testing.assert_allclose(out[:, limbs], pos[:, [idx[k] for k in limbs]])
    assert ok.all()
    other = {"left": "right", "right": "left"}
    for k, name in enumerate(PENN13.joints[1:], start=1):
        side, part = name.split("_", 1)
        assert MEDIAPIPE33.joints[idx[k]] == f"{other[side]}_{part}"


def test_penn_hips_and_head_follow_the_annotators():
    """Penn's hips are MediaPipe's spread about their midpoint, its head the nose raised
    away from the shoulders; a rigid motion of the body moves them with it."""
    from finetec_live.skeleton.layouts import PENN_HEAD_RAISE, PENN_HIP_SPREAD

    pos = np.zeros((1, 33, 2), np.float32)
    pos[0, 11], pos[0, 12] = (-1.0, 0.0), (1.0, 0.0)  # shoulders
    pos[0, 23], pos[0, 24] = (-0.3, 3.0), (0.3, 3.0)  # hips
    pos[0, 0] = (0.0, -1.0)  # nose
    out, ok = map_layout(pos, np.ones((1, 33), bool), MEDIAPIPE33, PENN13)
    # penn13's left hip (7) is MediaPipe's right hip (24) spread outwards (Penn's sides)
    np.testing.assert_allclose(out[0, 7], (0.3 * PENN_HIP_SPREAD, 3.0), atol=1e-6)
    np.testing.assert_allclose(out[0, 8], (-0.3 * PENN_HIP_SPREAD, 3.0), atol=1e-6)
    np.testing.assert_allclose(out[0, 0], (0.0, -PENN_HEAD_RAISE), atol=1e-6)
    # translation and rotation commute with the mapping (weights sum to 1)
    c, s = np.cos(0.7), np.sin(0.7)
    moved = pos @ np.array([[c, -s], [s, c]], np.float32).T + np.float32([5.0, -2.0])
    out2, _ = map_layout(moved, np.ones((1, 33), bool), MEDIAPIPE33, PENN13)
    np.testing.assert_allclose(out2, out @ np.array([[c, -s], [s, c]]).T + [5.0, -2.0],
                               atol=1e-5)
    # a hip needs both MediaPipe hips, the head the nose and both shoulders
    valid = np.ones((1, 33), bool)
    valid[0, 24] = False
    valid[0, 12] = False
    _, ok = map_layout(pos, valid, MEDIAPIPE33, PENN13)
    assert not ok[0, 7] and not ok[0, 8] and not ok[0, 0]
    assert not ok[0, 1] and ok[0, 2]  # MediaPipe's right shoulder is penn13's left_shoulder


def _left_shoulder_on_image_left(clips, classes, layout):
    """The share of frames of ``classes`` whose left shoulder is left of the right one."""
    lay = get_layout(layout)
    ls, rs = lay.joints.index("left_shoulder"), lay.joints.index("right_shoulder")
    shares = []
    for c in clips:
        if c.label_name in classes:
            ok = c.joint_valid[:, ls] & c.joint_valid[:, rs]
            shares += list(c.positions[ok, ls, 0] < c.positions[ok, rs, 0])
    return float(np.mean(shares))


def test_every_source_mapped_to_penn13_has_penn_s_sides(data_root):
    """Penn's files hold the person's right side in left_*: in its front views (people
    facing the camera: jumping jacks, guitarists) left_shoulder is on the image's left, in
    its rear views (bowling) on the right. J-HMDB's puppets name sides as the person's
    own (its front views, waving, clapping, pouring: the left shoulder on the image's
    right); mapped to penn13 they must take Penn's sides."""
    from finetec_live.data import load_dataset

    penn = load_dataset("penn", data_root).clips
    assert _left_shoulder_on_image_left(penn, {"jumping_jacks", "strum_guitar"}, "penn13") > 0.85
    assert _left_shoulder_on_image_left(penn, {"bowl"}, "penn13") < 0.15
    jh = load_dataset("jhmdb", data_root)
    front = {"wave", "clap", "pour"}
    assert _left_shoulder_on_image_left(jh.clips, front, jh.layout) < 0.15
    mapped = [replace(c, positions=p, joint_valid=v, layout="penn13") for c in jh.clips
              for p, v in [map_layout(c.positions, c.joint_valid, jh.layout, "penn13")]]
    assert _left_shoulder_on_image_left(mapped, front, "penn13") > 0.85


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


def test_exchanging_penn13_sides_twice_restores_the_mappings():
    """What tools/evaluate_videos.py --own-sides does (one exchange: the sources' own side
    names) is undone by a second exchange."""
    from finetec_live.skeleton.layouts import exchange_penn13_sides

    before = mapping_matrix("mediapipe33", "penn13")
    try:
        exchange_penn13_sides()
        own = mapping_matrix("mediapipe33", "penn13")
        assert own[1, 11] == 1.0 and own[1, 12] == 0.0  # left shoulder from left shoulder
    finally:
        exchange_penn13_sides()
    np.testing.assert_array_equal(mapping_matrix("mediapipe33", "penn13"), before)
