"""Several real people in one picture: videos tiled side by side, run through the live
command, and each tile's tracks scored against that tile's action.

The real videos here show one person each; a tile of two (or four) of them is a scene
with several people, each doing their own action, whose truth is known per tile.
:func:`tile_videos` writes such a composite (each video scaled to one height and sampled
at the composite's frame rate by time), :func:`run_live` runs ``finetec-live`` on it in a
child process (the command a user runs, with ``--jsonl`` and ``--stats-json``), and
:func:`score_tiles` gives each tile the labels whose person box lies in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError


@dataclass
class Tile:
    """One video's place in a composite: ``box`` = ``[x0, y0, x1, y1]`` in pixels."""

    video: str
    truth: str | None
    box: list[int]

    def holds(self, box: list[float]) -> bool:
        """Whether the centre of a label's person box lies in this tile."""
        if len(box) != 4:
            return False
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return self.box[0] <= x < self.box[2] and self.box[1] <= y < self.box[3]


def _frames_at(cap, fps_in: float, times: np.ndarray, loop: bool = False):
    """The source's frames nearest each time (seconds), as read in order (``loop``: from
    its start again when it ends)."""
    import cv2

    frame, t_frame, k = None, -1.0, 0
    for t in times:
        while t_frame + 0.5 / fps_in < t or frame is None:
            ok, img = cap.read()
            if not ok and loop and k:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = cap.read()
            if not ok:
                return
            frame, t_frame, k = img, k / fps_in, k + 1
        yield frame


def tile_videos(videos: list[tuple[Path, str | None]], out: Path, seconds: float,
                height: int = 480, cols: int | None = None, fps: float = 30.0,
                loop: bool = False) -> list[Tile]:
    """Write ``videos`` tiled (``cols`` per row, default all in one row), each scaled to
    ``height`` pixels, ``seconds`` long (at most the shortest video, unless ``loop``:
    shorter videos start again), at ``fps``."""
    import cv2

    cols = cols or len(videos)
    caps, rates, widths, lengths = [], [], [], []
    for path, _ in videos:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise FinetecError(f"cannot read video {path}")
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        rate = cap.get(cv2.CAP_PROP_FPS) or 30.0
        caps.append(cap)
        rates.append(rate)
        widths.append(round(w * height / h / 2) * 2)
        lengths.append(cap.get(cv2.CAP_PROP_FRAME_COUNT) / rate)
    seconds = seconds if loop else min(seconds, *lengths)
    times = np.arange(int(seconds * fps)) / fps
    width = max(widths)
    rows = -(-len(videos) // cols)
    tiles = [Tile(str(p), truth, [(i % cols) * width, (i // cols) * height,
                                  (i % cols + 1) * width, (i // cols + 1) * height])
             for i, (p, truth) in enumerate(videos)]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (cols * width, rows * height))
    try:
        streams = [_frames_at(c, r, times, loop) for c, r in zip(caps, rates, strict=True)]
        for _ in times:
            canvas = np.zeros((rows * height, cols * width, 3), np.uint8)
            for tile, stream, w in zip(tiles, streams, widths, strict=True):
                img = next(stream, None)
                if img is None:
                    continue
                x0 = tile.box[0] + (width - w) // 2
                canvas[tile.box[1]:tile.box[3], x0:x0 + w] = cv2.resize(img, (w, height))
            writer.write(canvas)
    finally:
        writer.release()
        for c in caps:
            c.release()
    return tiles


@dataclass
class LiveRunResult:
    labels: list[dict]
    stats: dict
    seconds: float = 0.0


def run_live(video: Path, out_dir: Path, max_people: int, model: str | None = None,
             extra: list[str] = (), timeout: float = 900.0) -> LiveRunResult:
    """``finetec-live --video VIDEO --fast --max-people N`` in a child process."""
    import time

    jsonl, stats = out_dir / f"{video.stem}.p{max_people}.jsonl", \
        out_dir / f"{video.stem}.p{max_people}.stats.json"
    cmd = [sys.executable, "-m", "finetec_live.cli.live", "--video", str(video), "--fast",
           "--no-display", "--max-people", str(max_people), "--jsonl", str(jsonl),
           "--stats-json", str(stats), "--bind", "tcp://127.0.0.1:*", "--no-progress",
           *(["--model", model] if model else []), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise FinetecError(f"finetec-live failed on {video}: {done.stderr.strip()[-300:]}")
    labels = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    return LiveRunResult(labels, json.loads(stats.read_text()), time.perf_counter() - t0)


@dataclass
class TileScore:
    tile: Tile
    windows: int = 0
    votes: Counter = field(default_factory=Counter)
    people: Counter = field(default_factory=Counter)  # track id -> windows in this tile

    @property
    def majority(self) -> str | None:
        return self.votes.most_common(1)[0][0] if self.votes else None

    @property
    def ids(self) -> int:
        """Tracks with most of their windows in this tile."""
        return len(self.people)


def score_tiles(tiles: list[Tile], labels: list[dict]) -> list[TileScore]:
    """Each tile's labels: those whose person box is centred in it; a track belongs to
    the tile that holds most of its windows."""
    scores = [TileScore(t) for t in tiles]
    home: dict[int, Counter] = {}
    for m in labels:
        for k, t in enumerate(tiles):
            if t.holds(m.get("box", [])):
                scores[k].windows += 1
                scores[k].votes[m["label"]] += 1
                home.setdefault(m["person"], Counter())[k] += 1
                break
    for person, where in home.items():
        k, n = where.most_common(1)[0]
        scores[k].people[person] = n
    return scores
