"""The replay progress line of ``finetec-live``: one updating line on stderr while a file
replays (never for a camera): source time done of the total, windows classified, and the
latest label. On by default only when stderr is a terminal (``--progress`` forces it,
``--no-progress`` turns it off)."""

from __future__ import annotations

import math
import sys
import time

REFRESH_S = 0.5  # at most one redraw this often


def source_seconds(source, looping: bool) -> float | None:
    """A file's length in seconds of source time, None when unknown (a recording, a
    loop)."""
    frames = getattr(source, "frame_count", 0) or 0
    if looping or frames <= 0 or not source.fps:
        return None
    return frames / source.fps


class ReplayProgress:
    """``update(t, worker)`` after each frame tick (``t``: its source time; ``worker``: the
    :class:`~finetec_live.live.worker.InferenceWorker`, read for the windows and the label),
    ``close(worker)`` at the end: the last state stays on the line."""

    def __init__(self, stream: str, total_s: float | None, period_s: float, file=None,
                 refresh_s: float = REFRESH_S) -> None:
        from tqdm import tqdm

        self.total_s = total_s if total_s and math.isfinite(total_s) else None
        self.period_s, self.refresh_s = float(period_s), float(refresh_s)
        self.stream = stream
        self.done_s = 0.0
        fmt = "{percentage:3.0f}%|{bar:24}| {desc}" if self.total_s else "{desc}"
        self.bar = tqdm(total=self.total_s, desc=f"{stream}: {self._times()}",
                        file=file or sys.stderr, bar_format=fmt, mininterval=0.0, miniters=0,
                        dynamic_ncols=True)
        self._t0: float | None = None
        self._drawn = -math.inf

    def update(self, t: float, worker, now: float | None = None) -> bool:
        """Note the source time ``t``; redraw when :data:`REFRESH_S` has passed."""
        if self._t0 is None:
            self._t0 = t
        self.done_s = t - self._t0 + self.period_s
        now = time.monotonic() if now is None else now
        if now - self._drawn < self.refresh_s:
            return False
        self._drawn = now
        self._draw(worker)
        return True

    def _times(self) -> str:
        done = min(self.done_s, self.total_s) if self.total_s else self.done_s
        return f"{done:.1f}/{self.total_s:.1f} s" if self.total_s else f"{done:.1f} s"

    def text(self, worker) -> str:
        """The line after the bar: ``clip: 3.5/10.0 s, 6 windows, squat``."""
        latest = worker.newest
        label = f", {latest.message.label}" if latest is not None else ""
        return f"{self.stream}: {self._times()}, {worker.stats.published} windows{label}"

    def _draw(self, worker) -> None:
        self.bar.set_description_str(self.text(worker), refresh=False)
        self.bar.n = min(self.done_s, self.total_s) if self.total_s else self.done_s
        self.bar.refresh()

    def close(self, worker=None) -> None:
        if worker is not None:
            self._draw(worker)
        self.bar.close()
