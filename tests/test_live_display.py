"""The written video shows the source's time, never the processing speed."""

from __future__ import annotations

import cv2
import numpy as np

from finetec_live.live.display import Display
from finetec_live.live.pose import Pose


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        out.append(image.astype(int))
    cap.release()
    return out


def test_the_output_video_carries_source_time_not_fps(tmp_path):
    image = np.full((180, 320, 3), 90, np.uint8)
    pose = Pose(0, 1.0, np.random.default_rng(0).uniform(50, 150, (13, 2)), np.ones(13, bool),
                "penn13")
    path = tmp_path / "out.avi"
    display = Display(False, path, 30.0)
    display.draw_tick(image, 320, 180, {0: pose}, {}, source_time=1.0, fps=12.0)
    display.draw_tick(image, 320, 180, {0: pose}, {}, source_time=1.0, fps=55.0)  # only fps
    display.draw_tick(image, 320, 180, {0: pose}, {}, source_time=7.5, fps=55.0)  # time
    display.close()
    a, b, c = _frames(path)
    assert display.written == 3
    assert np.abs(a - b).max() <= 8  # codec noise only: the speed is not drawn
    assert np.abs(a - c).max() > 100  # the time is
