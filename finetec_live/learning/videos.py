"""A development set of real videos, measured through the live path.

Videos sit in one folder per class (``penn_real/squat/*.mp4``); videos of actions
outside the model's classes sit in a folder of their own, without class folders.
Poses are estimated once per video with the live path's own front end
(:class:`~finetec_live.live.pose.PoseEstimator`, every frame, as ``finetec-live
--fast`` does) and cached as pose recordings named by the video's content hash;
the windows are then cut and classified by the same steps the live command
composes (:class:`~finetec_live.live.timeline.PersonTimeline`, the
``--min-valid`` rule, the ``--smooth`` rule,
:func:`~finetec_live.live.worker.classify_window`). A video's label is the majority of
its classified windows.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from finetec_live.errors import FinetecError
from finetec_live.inference.smoothing import DEFAULT_WINDOWS, Smoother

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class VideoResult:
    """The classified windows of one video (``truth`` None: not one of the classes)."""

    path: Path
    truth: str | None
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    missing: list[float] = field(default_factory=list)
    skipped: int = 0  # windows with too few posed frames

    @property
    def majority(self) -> str | None:
        if not self.labels:
            return None
        return collections.Counter(self.labels).most_common(1)[0][0]

    @property
    def windows_right(self) -> int:
        return sum(lab == self.truth for lab in self.labels)


def find_videos(root: str | Path, labelled: bool = True) -> list[tuple[Path, str | None]]:
    """``(video, class)`` for every video under ``root``: in class folders when
    ``labelled``, else directly in ``root`` (class None). Sorted, so runs compare."""
    root = Path(root)
    if not root.is_dir():
        raise FinetecError(f"video folder {root} not found; pass an existing folder")
    if labelled:
        found = [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir()
                 for p in sorted(d.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    else:
        found = [(p, None) for p in sorted(root.iterdir())
                 if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    if not found:
        raise FinetecError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {root}"
                           + (" or its class folders" if labelled else ""))
    return found


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_path(video: Path, cache_dir: Path) -> Path:
    """Where :func:`cached_poses` keeps ``video``'s recording (named by its content)."""
    return Path(cache_dir) / f"{Path(video).stem}-{content_hash(video)}.fkp"


def cached_poses(video: Path, cache_dir: Path, out: Path | None = None) -> Path:
    """The pose recording of ``video`` (every frame through MediaPipe), made once; ``out``
    its :func:`cache_path` when the caller has it already."""
    from finetec_live.live.pose import PoseEstimator
    from finetec_live.live.recording import KeypointRecorder
    from finetec_live.live.sources import VideoSource

    cache_dir.mkdir(parents=True, exist_ok=True)
    out = out or cache_path(video, cache_dir)
    if out.is_file():
        return out
    tmp = out.with_suffix(f".{os.getpid()}.part")  # processes may make the same one at once
    source = VideoSource(video, realtime=False)
    recorder = KeypointRecorder(tmp, source.fps, source.width, source.height, str(video))
    try:
        with PoseEstimator(model_complexity=1) as estimator:
            for frame in source:
                recorder.write(estimator.estimate(frame.image, frame.index, frame.timestamp))
    finally:
        recorder.close()
        source.close()
    tmp.replace(out)
    return out


def classify_recording(recognizer, recording: Path, truth: str | None, video: Path,
                       min_valid: float = 0.2, min_visibility: float = 0.5,
                       smooth: int = DEFAULT_WINDOWS) -> VideoResult:
    """Cut and classify the windows of a pose recording as ``finetec-live`` does (each
    label from the mean of the last ``smooth`` windows, ``--smooth``)."""
    from finetec_live.inference.prepare import MIN_FRAMES
    from finetec_live.live.recording import KeypointSource
    from finetec_live.live.timeline import PersonTimeline
    from finetec_live.live.worker import classify_window, enough_valid

    source = KeypointSource(recording, realtime=False)
    timeline = PersonTimeline(recognizer.layout, float(recognizer.window_seconds),
                              float(recognizer.hop_seconds), 1.0 / source.fps)
    smoother = Smoother(smooth, float(recognizer.hop_seconds))
    result = VideoResult(video, truth)

    def take(windows) -> None:
        for w in windows:
            if w is None:
                continue
            if not enough_valid(w, min_valid, min_frames=MIN_FRAMES):
                result.skipped += 1
                continue
            m = classify_window(recognizer, w, "dev", smoother=smoother).message
            result.labels.append(m.label)
            result.scores.append(m.score)
            result.missing.append(m.missing)

    for frame in source:
        pose = frame.pose.to_layout(recognizer.layout, min_visibility)
        take(timeline.push(pose))
    take([timeline.flush()])
    return result


def evaluate_videos(recognizer, videos: Iterable[tuple[Path, str | None]], cache_dir: Path,
                    progress: bool = True, smooth: int = DEFAULT_WINDOWS) -> list[VideoResult]:
    from tqdm import tqdm

    results = []
    for video, truth in tqdm(list(videos), desc="videos", disable=not progress, unit="video"):
        rec_path = cached_poses(video, cache_dir)
        results.append(classify_recording(recognizer, rec_path, truth, video, smooth=smooth))
    return results


def class_table(results: list[VideoResult]) -> str:
    """Per class: videos right (majority label) and windows right, with the labels the
    wrong windows got; totals at the bottom."""
    by_class: dict[str, list[VideoResult]] = collections.defaultdict(list)
    for r in results:
        by_class[r.truth].append(r)
    lines = ["| class | videos right | windows right | wrong windows went to |",
             "|---|---:|---:|---|"]
    tv = tr = wv = wr = 0
    for name in sorted(by_class):
        rs = by_class[name]
        v_right = sum(r.majority == name for r in rs)
        n_win = sum(len(r.labels) for r in rs)
        w_right = sum(r.windows_right for r in rs)
        wrong = collections.Counter(lab for r in rs for lab in r.labels if lab != name)
        top = ", ".join(f"{lab} {n}" for lab, n in wrong.most_common(3)) or "–"
        lines.append(f"| {name} | {v_right} / {len(rs)} | {w_right} / {n_win} | {top} |")
        tv, tr, wv, wr = tv + len(rs), tr + v_right, wv + n_win, wr + w_right
    lines.append(f"| **all** | **{tr} / {tv} ({100 * tr / max(tv, 1):.0f}%)** | "
                 f"**{wr} / {wv} ({100 * wr / max(wv, 1):.0f}%)** | |")
    return "\n".join(lines)


def other_table(results: list[VideoResult]) -> str:
    """Videos of other actions: the majority label each gets, and its share of windows."""
    lines = ["| video | windows | majority label | its share | mean score |",
             "|---|---:|---|---:|---:|"]
    for r in results:
        n = len(r.labels)
        share = (collections.Counter(r.labels).most_common(1)[0][1] / n) if n else 0.0
        mean = sum(r.scores) / n if n else 0.0
        lines.append(f"| {r.path.name} | {n} | {r.majority or '–'} | {share:.0%} | {mean:.2f} |")
    return "\n".join(lines)


def summary(results: list[VideoResult]) -> dict:
    """Machine-readable counts, per video."""
    return {"videos": [{"video": str(r.path), "truth": r.truth, "majority": r.majority,
                        "windows": len(r.labels), "windows_right": r.windows_right,
                        "skipped": r.skipped,
                        "labels": dict(collections.Counter(r.labels))} for r in results]}
