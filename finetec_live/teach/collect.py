"""What a user teaches: labelled clips of their own actions, as penn13 clips.

Two kinds of input:

- a folder with one sub-folder per class, holding videos (``.mp4 .avi .mov .mkv
  .webm``), pose recordings made with ``finetec-live --record`` (``.fkp``), or both.
  Videos are run once through the live path's own MediaPipe front end
  (:func:`~finetec_live.learning.videos.cached_poses`: every frame, the same model) and
  the recordings cached next to the data, in ``.finetec-poses/`` (or, when the folder is
  read-only, in the user's cache folder), named by the video's content hash, so a
  second run skips them. Every recording is mapped to penn13 with the live visibility
  rule, as ``finetec-live`` maps each frame.
- a PYSKL / MMAction2 2D annotation pickle (:func:`~finetec_live.data.pyskl.load_pyskl`),
  whose ``split['train']`` clips are taught, mapped from the file's layout to penn13.

Nothing is dropped silently: a file that is neither a video nor a recording, a video
that cannot be decoded, a recording in which nobody was found, all end in
:attr:`TeachData.skipped` with the reason, and in the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetec_live.data.clips import Clip
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import map_layout

log = logging.getLogger(__name__)

LAYOUT = "penn13"  # the layout of the shipped backbone
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
RECORDING_SUFFIX = ".fkp"
CACHE_NAME = ".finetec-poses"
MIN_POSED_FRAMES = 8  # a clip with fewer posed frames teaches nothing (the model's minimum)


@dataclass(frozen=True)
class Skipped:
    """An input left out, and why (one line, for the report)."""

    path: str
    reason: str


@dataclass
class TeachData:
    """The clips to teach: ``clips`` (penn13, split ``"train"``), their ``class_names``
    (index = label), where they came from (``kind``: ``"folder"`` or ``"pyskl"``) and
    what was left out."""

    name: str
    kind: str
    class_names: list[str]
    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Clips per class."""
        return {n: sum(c.label == k for c in self.clips) for k, n in enumerate(self.class_names)}


def _cache_dir(root: Path, cache: str | os.PathLike | None) -> Path:
    """Where the pose recordings of ``root``'s videos go: ``cache`` when given, else
    ``root/.finetec-poses`` when it can be written, else the user's cache folder."""
    if cache is not None:
        return Path(cache)
    here = root / CACHE_NAME
    if os.access(here, os.W_OK) if here.is_dir() else os.access(root, os.W_OK):
        return here
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "finetec-live" / "poses"


def _class_folders(root: Path) -> list[Path]:
    if not root.exists():
        raise FinetecError(f"{root} not found; pass a folder with one sub-folder of clips per "
                           "action, or a PYSKL .pkl file")
    if not root.is_dir():
        raise FinetecError(f"{root} is neither a folder nor a .pkl file; pass a folder with one "
                           "sub-folder of clips per action, or a PYSKL .pkl file")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise FinetecError(f"{root} has no class folders; put each action's videos or "
                           "recordings in a sub-folder named after the action")
    return folders


def _estimate(video: Path, cache_dir: Path, out: Path) -> Path:
    """One video's pose recording (a worker process's task)."""
    from finetec_live.learning.videos import cached_poses

    return cached_poses(video, cache_dir, out)


def _clip_of(recording: Path, label: int, name: str, label_name: str) -> Clip:
    from finetec_live.learning.realposes import recording_arrays

    pos, jv, fps = recording_arrays(recording, LAYOUT)
    posed = int(jv.any(1).sum())
    if posed < MIN_POSED_FRAMES:
        raise FinetecError(f"nobody found: {posed} of {len(pos)} frames have a pose")
    return Clip(name=name, positions=pos, joint_valid=jv, label=label, label_name=label_name,
                split="train", fps=fps, layout=LAYOUT)


def _pose_recordings(videos: list[Path], cache_dir: Path, jobs: int, progress: bool
                     ) -> tuple[dict[Path, Path], list[Skipped]]:
    """``{video: recording}`` for every video that could be read, estimating the
    uncached ones in ``jobs`` processes, with a progress bar; the others skipped."""
    from tqdm import tqdm

    from finetec_live.learning.videos import cache_path

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FinetecError(f"cannot make the pose cache {cache_dir} ({exc.strerror}); pass "
                           "--pose-cache with a writable folder") from None
    done, todo, skipped = {}, [], []
    paths = {v: cache_path(v, cache_dir) for v in videos}  # each video hashed once
    for v in videos:
        if paths[v].is_file():
            done[v] = paths[v]
        else:
            todo.append(v)
    if len(done):
        log.info("%d of %d videos already have poses in %s", len(done), len(videos),
                 cache_dir)
    if not todo:
        return done, skipped
    bar = tqdm(total=len(todo), desc="pose estimation", unit="video", disable=not progress)
    if jobs <= 1 or len(todo) == 1:
        for v in todo:
            try:
                done[v] = _estimate(v, cache_dir, paths[v])
            except (FinetecError, OSError, ValueError) as exc:
                skipped.append(Skipped(str(v), f"unreadable video: {exc}"))
            bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as ex:
            futures = {ex.submit(_estimate, v, cache_dir, paths[v]): v for v in todo}
            for f in as_completed(futures):
                v = futures[f]
                try:
                    done[v] = f.result()
                except (FinetecError, OSError, ValueError) as exc:
                    skipped.append(Skipped(str(v), f"unreadable video: {exc}"))
                bar.update()
    bar.close()
    return done, skipped


def _read(files, cache_dir: Path, jobs: int, progress: bool) -> tuple[list[Clip], list[Skipped]]:
    """``files`` ``(path, label, clip name, class name)``, videos or recordings, as clips
    (videos' poses estimated or taken from the cache); the ones that fail, skipped."""
    videos = [f[0] for f in files if f[0].suffix.lower() != RECORDING_SUFFIX]
    recordings, skipped = _pose_recordings(videos, cache_dir, jobs, progress)
    clips = []
    for p, label, name, label_name in files:
        rec = p if p.suffix.lower() == RECORDING_SUFFIX else recordings.get(p)
        if rec is None:
            continue
        try:
            clips.append(_clip_of(rec, label, name, label_name))
        except FinetecError as exc:
            skipped.append(Skipped(str(p), str(exc)))
    return clips, skipped


def collect_folder(root: str | os.PathLike, cache: str | os.PathLike | None = None,
                   jobs: int = 2, progress: bool = True) -> TeachData:
    """The clips of a folder of class folders (see the module docstring): one clip per
    video or recording, labelled by its folder."""
    root = Path(root)
    folders = _class_folders(root)
    names = [d.name for d in folders]
    files = []
    skipped = [Skipped(str(p), "not in a class folder; move it into the folder of its action")
               for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")]
    for k, d in enumerate(folders):
        for p in sorted(d.iterdir()):
            suffix = p.suffix.lower()
            if p.name.startswith("."):
                continue
            if p.is_file() and (suffix in VIDEO_SUFFIXES or suffix == RECORDING_SUFFIX):
                files.append((p, k))
            else:
                skipped.append(Skipped(str(p), "not a video (" + " ".join(VIDEO_SUFFIXES)
                                       + ") or a pose recording (.fkp)"))
    clips, unread = _read(
        [(p, k, f"{names[k]}/{p.name}", names[k]) for p, k in files],
        _cache_dir(root, cache), jobs, progress)
    skipped += unread
    for s in skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    return TeachData(root.name, "folder", names, clips, skipped)


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line (blank lines ignored), in label order."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FinetecError(f"cannot read class names from {path} ({exc}); pass a text file "
                           "with one class name per line") from None
    names = [ln.strip() for ln in lines if ln.strip()]
    if len(set(names)) != len(names):
        raise FinetecError(f"{path} names a class twice; give each label one distinct name")
    return names


def collect_pyskl(path: str | os.PathLike, class_names: Sequence[str] | None = None,
                  layout: str | None = None) -> TeachData:
    """The ``split['train']`` clips of a PYSKL 2D annotation file, mapped to penn13."""
    from finetec_live.data.pyskl import load_pyskl

    path = Path(path)
    if not path.is_file():
        raise FinetecError(f"PYSKL file {path} not found; check the path")
    clipset = load_pyskl(path, train_split="train", test_split=None, layout=layout,
                         class_names=class_names)
    clips, skipped = [], []
    for c in clipset.train():
        pos, jv = map_layout(c.positions, c.joint_valid, clipset.layout, LAYOUT)
        if int(jv.any(1).sum()) < MIN_POSED_FRAMES:
            skipped.append(Skipped(c.name, f"fewer than {MIN_POSED_FRAMES} frames with a "
                                           "valid joint"))
            continue
        clips.append(Clip(name=c.name, positions=pos, joint_valid=jv, label=c.label,
                          label_name=c.label_name, split="train", fps=c.fps, layout=LAYOUT))
    return TeachData(path.stem, "pyskl", list(clipset.class_names), clips, skipped)


def check_classes(data: TeachData, min_clips: int) -> None:
    """Every class has at least ``min_clips`` clips, else one error line naming them."""
    if not data.clips:
        raise FinetecError(f"no usable clip in {data.name}; see the skipped inputs above")
    if len(data.class_names) < 2:
        raise FinetecError(f"{data.name} has one class ({data.class_names[0]}); teaching "
                           "needs at least two (add a folder of another action)")
    empty = [n for n, k in data.counts().items() if k == 0]
    if empty and data.kind == "pyskl":
        raise FinetecError(f"no training clip has the label of {', '.join(empty)}; PYSKL labels "
                           "must run from 0 without gaps (renumber them) and --class-names "
                           "give one name per label")
    few = {n: k for n, k in data.counts().items() if k < min_clips}
    if few:
        listed = ", ".join(f"{n} ({k})" for n, k in few.items())
        raise FinetecError(f"too few clips for {listed}: each class needs at least {min_clips} "
                           "(one is held out for validation); add clips or remove the class")


def chunk(clips: Sequence[Clip], seconds: float, hop: float) -> list[Clip]:
    """Long clips cut into ``seconds`` chunks every ``hop`` (shorter clips whole), so a long
    video gives as many training windows as its length holds; chunks posed in less than
    half their frames are left out, and a clip left without any is kept whole."""
    out = []
    for c in clips:
        n, step = max(MIN_POSED_FRAMES, round(seconds * c.fps)), max(1, round(hop * c.fps))
        if c.num_frames <= n + step:
            out.append(c)
            continue
        mine = [Clip(name=f"{c.name}@{s}", positions=c.positions[s:s + n],
                     joint_valid=c.joint_valid[s:s + n], label=c.label,
                     label_name=c.label_name, split=c.split, fps=c.fps, layout=c.layout)
                for s in range(0, c.num_frames - n + 1, step)
                if c.joint_valid[s:s + n].any(1).mean() >= 0.5]
        # a clip posed in less than half of every chunk is kept whole (never lost)
        out += mine or [c]
    return out


def durations(clips: Sequence[Clip]) -> np.ndarray:
    return np.array([c.num_frames / c.fps for c in clips])


def collect_unlabelled(root: str | os.PathLike, cache: str | os.PathLike | None = None,
                       jobs: int = 2, progress: bool = True) -> list[Clip]:
    """Clips (label 0) of every video and recording under ``root``, in class folders or
    not: videos of actions that are none of the classes (``finetec-train --other``). Their
    action is the folder they sit in; unreadable ones are logged and left out."""
    root = Path(root)
    if not root.is_dir():
        raise FinetecError(f"--other {root} is not a folder; pass a folder of videos of other "
                           "actions")
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and p.suffix.lower() in (*VIDEO_SUFFIXES, RECORDING_SUFFIX))
    if not files:
        raise FinetecError(f"--other {root} holds no videos or recordings")
    clips, unread = _read([(p, 0, f"other/{p.name}", f"other/{p.parent.name}") for p in files],
                          _cache_dir(root, cache), jobs, progress)
    for s in unread:
        log.warning("--other: skipped %s: %s", s.path, s.reason)
    return clips
