"""Real poses for training: folds hold out whole sources, chunks are the live path's poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finetec_live.errors import FinetecError
from finetec_live.learning import realposes as R
from finetec_live.live.sources import DEMO_VIDEO

VIDEOS = [(Path(f"/v/{c}/{s}_{i}.mp4"), c) for c, s, i in [
    ("squat", "luke", 1), ("squat", "luke", 2), ("bench", "luke", 3), ("squat", "ann", 1),
    ("jump", "bob", 1), ("jump", "bob", 2), ("bench", "cy", 1), ("jump", "dee", 1),
    ("squat", "eve", 1)]]


def test_folds_hold_out_whole_sources_and_cover_every_video():
    assert R.source_of(Path("/x/Luke_backsquat_rear.mp4")) == "luke"
    folds = R.fold_sources(VIDEOS, 3)
    assert folds == R.fold_sources(list(reversed(VIDEOS)), 3)  # order does not matter
    held = [R.select_fold(VIDEOS, 3, k, held_out=True) for k in range(3)]
    assert sorted(v for h in held for v in h) == sorted(VIDEOS)
    for k in range(3):
        rest = R.select_fold(VIDEOS, 3, k, held_out=False)
        assert {R.source_of(v) for v, _ in rest}.isdisjoint(
            {R.source_of(v) for v, _ in held[k]})
        assert len(rest) + len(held[k]) == len(VIDEOS)
    assert max(len(h) for h in held) - min(len(h) for h in held) <= 1
    with pytest.raises(FinetecError):
        R.fold_sources(VIDEOS, 1)
    with pytest.raises(FinetecError):
        R.select_fold(VIDEOS, 3, 3, held_out=True)


def test_chunks_are_the_live_poses_of_a_real_video(tmp_path):
    video = tmp_path / "box_jump" / "demo_clip.mp4"
    video.parent.mkdir()
    video.write_bytes(DEMO_VIDEO.read_bytes())
    cache = tmp_path / "cache"
    chunks = R.video_chunks([(video, "box_jump")], cache, "penn13", ["x", "box_jump"],
                            chunk_s=2.0, hop_s=1.0)
    pos, jv, fps = R.recording_arrays(next(cache.glob("*.fkp")), "penn13")
    n = round(2.0 * fps)
    assert chunks and all(c.num_frames == n and c.label == 1 for c in chunks)
    first = int(chunks[0].name.split("@")[1])
    np.testing.assert_array_equal(chunks[0].joint_valid, jv[first:first + n])
    np.testing.assert_array_equal(chunks[0].positions, pos[first:first + n])
    assert np.isfinite(chunks[0].positions).all()
    none = R.video_chunks([(video, None)], cache, "penn13", None, chunk_s=2.0)
    assert all(c.label == 0 and c.label_name == "other" for c in none)
    with pytest.raises(FinetecError, match="not one of the model's classes"):
        R.video_chunks([(video, "box_jump")], cache, "penn13", ["x"])
