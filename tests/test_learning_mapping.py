"""Body ratios that check a layout mapping."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live.learning.mapping import body_ratios, summary


def test_ratios_of_a_known_body_do_not_depend_on_position_scale_or_rotation():
    pos = np.zeros((1, 13, 2))
    pos[0, 0] = (0.0, -1.0)  # head
    pos[0, 1], pos[0, 2] = (-1.5, 0.0), (1.5, 0.0)  # shoulders
    pos[0, 7], pos[0, 8] = (-1.0, 4.0), (1.0, 4.0)  # hips
    ok = np.ones((1, 13), bool)
    r = body_ratios(pos, ok)
    assert r["head_above_shoulders"][0] == pytest.approx(0.25)
    assert r["shoulder_width"][0] == pytest.approx(0.75)
    assert r["hip_width"][0] == pytest.approx(0.5)
    assert r["hip_to_shoulder_width"][0] == pytest.approx(2 / 3)
    c, s = np.cos(1.1), np.sin(1.1)
    moved = 3.0 * pos @ np.array([[c, -s], [s, c]]).T + 7.0
    for k, v in body_ratios(moved, ok).items():
        assert v[0] == pytest.approx(r[k][0]), k
    ok[0, 8] = False  # a hip missing: the frame does not count
    assert summary(body_ratios(pos, ok)) == {}
