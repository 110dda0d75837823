"""Real poses for training: videos run once through the live path's MediaPipe front end
(:func:`~finetec_live.learning.videos.cached_poses`), mapped to the model's layout with the
live visibility rule, and cut into overlapping chunks that the
:class:`~finetec_live.learning.windows.Sampler` crops live windows from.

Videos are grouped by *source* (the first ``_``-separated word of the file name: the
person or channel who filmed them), and the sources are dealt into folds, so that a
cross-validation holds out whole people: a fold's score is a score on people the model
has not seen, as the final check of a shipped model is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetec_live.data.clips import Clip
from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)

CHUNK_SECONDS = 3.5
CHUNK_HOP_SECONDS = 1.0
MIN_VISIBILITY = 0.5  # the live command's default (--min-visibility)


def source_of(video: Path) -> str:
    """The person or channel a video comes from: the first word of its file name."""
    return Path(video).stem.split("_")[0].lower()


def fold_sources(videos: Sequence[tuple[Path, str | None]], folds: int) -> dict[str, int]:
    """``{source: fold}``: sources dealt into ``folds`` folds, largest first, each to the
    fold with the fewest videos so far (ties: the lowest fold). Deterministic."""
    if folds < 2:
        raise FinetecError(f"cross-validation needs at least 2 folds, got {folds}")
    counts: dict[str, int] = {}
    for v, _ in videos:
        counts[source_of(v)] = counts.get(source_of(v), 0) + 1
    load = [0] * folds
    out = {}
    for src in sorted(counts, key=lambda s: (-counts[s], s)):
        k = int(np.argmin(load))
        out[src] = k
        load[k] += counts[src]
    return out


def select_fold(videos, folds: int, fold: int, held_out: bool):
    """The videos of fold ``fold`` (``held_out``) or of every other fold."""
    if not 0 <= fold < folds:
        raise FinetecError(f"fold {fold} does not exist; use 0..{folds - 1}")
    assign = fold_sources(videos, folds)
    return [(v, t) for v, t in videos if (assign[source_of(v)] == fold) == held_out]


def recording_arrays(recording: Path, layout: str, min_visibility: float = MIN_VISIBILITY):
    """``(positions (T, V, 2), joint_valid (T, V), fps)`` of a pose recording, each frame
    mapped to ``layout`` as the live command maps it (missing frames: no joint valid)."""
    from finetec_live.live.recording import KeypointSource

    source = KeypointSource(recording, realtime=False)
    pos, jv = [], []
    for frame in source:
        p = frame.pose.to_layout(layout, min_visibility)
        pos.append(p.positions)
        jv.append(p.joint_valid)
    if not pos:
        raise FinetecError(f"{recording} holds no frames; delete it so it is made again")
    return np.stack(pos), np.stack(jv), float(source.fps)


def video_chunks(videos: Sequence[tuple[Path, str | None]], cache_dir: Path, layout: str,
                 class_names: Sequence[str] | None, chunk_s: float = CHUNK_SECONDS,
                 hop_s: float = CHUNK_HOP_SECONDS, min_posed: float = 0.5) -> list[Clip]:
    """Chunks of ``chunk_s`` every ``hop_s`` of every video, as clips of split
    ``"train"``; a chunk with less than ``min_posed`` of its frames posed is left out.
    With ``class_names`` each video's class (its folder) is its label; without, labels
    are 0 (windows of none of the classes, for outlier exposure)."""
    from finetec_live.learning.videos import cached_poses

    index = {n: i for i, n in enumerate(class_names or ())}
    clips, dropped = [], 0
    for video, truth in videos:
        if class_names is not None and truth not in index:
            raise FinetecError(f"{video} is in folder {truth!r}, which is not one of the "
                               f"model's classes ({', '.join(class_names)})")
        pos, jv, fps = recording_arrays(cached_poses(video, cache_dir), layout)
        n, step = max(8, round(chunk_s * fps)), max(1, round(hop_s * fps))
        starts = range(0, max(1, len(pos) - n + 1), step)
        for s in starts:
            p, v = pos[s:s + n], jv[s:s + n]
            if v.any(1).mean() < min_posed:
                dropped += 1
                continue
            clips.append(Clip(name=f"{video.stem}@{s}", positions=p, joint_valid=v,
                              label=index.get(truth, 0), label_name=truth or "other",
                              split="train", fps=fps, layout=layout))
    log.info("%d chunks of %d videos (%d with too few posed frames left out)", len(clips),
             len(videos), dropped)
    return clips
