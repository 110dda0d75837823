"""Segments: a stream's per-window labels smoothed into stretches of one label.

Windows overlap (2.5 s every 0.5 s) and their labels flicker at a change of action or
under heavy occlusion. A :class:`Segmenter` turns the sequence of decisions (a class,
``unknown`` or ``idle``, each a label like any other) into :class:`Segment` s with
hysteresis. The rule, window by window (in the order they were published):

- The first window opens the first segment, with its label.
- A window of the open segment's label joins it.
- A window of another label joins it too, provisionally: the segment changes only when
  one other label is the decision for ``enter`` consecutive windows (default 2). Then the
  segment closes and the new one starts with those windows; windows of other labels in
  between stay in the segment they fell in (flicker is absorbed).
- The boundary between the two segments is where the change most likely lies. A class or
  ``unknown`` window takes the label of the larger part of its time, so the boundary is
  the centre of the new label's first window (its start would place every change about
  half a window early). An ``idle`` window is still over all of its time (every region
  static) and any other window moves somewhere in it, so an idle segment spans its idle
  windows exactly: it starts at the start of its first idle window and ends at the end
  of its last. The segments of a stream thus tile its time without overlap.
- A hole in the coverage (a window starting more than ``gap`` seconds after the last
  window of the segment ended: a long stretch without classified windows) closes the
  segment at its last window's end; the next window opens a new one at its own start.
- At the end of the stream, :meth:`Segmenter.flush` closes the open segment at its last
  window's end.

A segment counts its ``windows`` (all the windows in it, absorbed ones included),
``votes`` (those whose decision was its label) and ``score``, the mean score of those.
Times are seconds of source time, as the windows carry them. Pure Python, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: The label of windows in which nobody moves (``finetec_live.inference.openset.IDLE``).
IDLE = "idle"
#: Float slack when comparing one window's start with another's end (windows that touch
#: end and start at the same instant, up to rounding).
TIME_SLACK_S = 1e-6


@dataclass(frozen=True)
class Segment:
    """A stretch of source time with one label."""

    seq: int  # segments of the stream, from 0
    label: str
    t_start: float  # seconds of source time
    t_end: float
    windows: int  # windows in the segment, absorbed ones of other labels included
    votes: int  # windows whose decision was ``label`` (1 <= votes <= windows)
    score: float  # mean score of those windows
    first_window: int  # seq of the first window in the segment
    last_window: int  # seq of the last
    person: int = 0  # whose labels (the track id)

    def __post_init__(self) -> None:
        if not 1 <= self.votes <= self.windows:
            raise ValueError(f"a segment needs 1 <= votes <= windows, got {self.votes} of "
                             f"{self.windows}")
        if self.t_end < self.t_start or self.last_window < self.first_window:
            raise ValueError(f"a segment ends before it starts: {self.t_start}-{self.t_end} "
                             f"s, windows {self.first_window}-{self.last_window}")

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Run:
    """Windows of one label in a row: the open segment's own, or the candidate's."""

    label: str
    t_start: float
    first_window: int
    windows: int = 0
    votes: int = 0
    score_sum: float = 0.0
    last_end: float = 0.0  # end of the last window in it
    last_window: int = 0
    centre: float = 0.0  # centre of the first window: the boundary, should it take over
    vote_end: float = 0.0  # end of the last window of its own label


class Segmenter:
    """``push`` each window's decision; it returns the segment that closed, if one did.

    ``enter``: consecutive windows a new label needs to take over (1: no hysteresis).
    ``gap``: seconds of coverage missing between two windows that close a segment
    (the command passes its hop, so one lost window never splits a segment).
    ``idle``: the label whose windows are still throughout (its boundaries are exact).
    """

    def __init__(self, enter: int = 2, gap: float = 0.0, idle: str = IDLE) -> None:
        if isinstance(enter, bool) or not isinstance(enter, int) or enter < 1:
            raise ValueError(f"enter must be an integer >= 1, got {enter!r}")
        if not gap >= 0.0:
            raise ValueError(f"gap must be >= 0 seconds, got {gap!r}")
        self.enter, self.gap, self.idle = enter, float(gap), idle
        self.closed = 0  # segments closed so far (the next one's seq)
        self._open: _Run | None = None
        self._candidate: _Run | None = None  # another label's consecutive windows
        self._before = (0.0, 0)  # the open segment's last end and window before the candidate

    @property
    def label(self) -> str | None:
        """The open segment's label (None before the first window and after a flush)."""
        return None if self._open is None else self._open.label

    def push(self, label: str, score: float, t_start: float, t_end: float, seq: int
             ) -> Segment | None:
        """One window's decision (``label``, ``score``), its bounds (seconds) and seq."""
        label, score = str(label), float(score)
        cur = self._open
        if cur is None:
            self._open = self._start(label, score, t_start, t_end, seq)
            return None
        if t_start > cur.last_end + self.gap + TIME_SLACK_S:  # a hole in the coverage
            done = self._close(cur, cur.last_end)
            self._open, self._candidate = self._start(label, score, t_start, t_end, seq), None
            return done
        if label == cur.label:
            self._candidate = None  # the flicker stays in the segment
            self._add(cur, score, t_end, seq, vote=True)
            return None
        cand = self._candidate
        if cand is None or cand.label != label:
            self._before = (cur.last_end, cur.last_window)
            cand = self._candidate = _Run(label, float(t_start), int(seq),
                                          centre=0.5 * (t_start + t_end))
        self._add(cand, score, t_end, seq, vote=True)
        self._add(cur, score, t_end, seq, vote=False)
        if cand.votes < self.enter:
            return None
        cur.windows -= cand.windows
        cur.last_end, cur.last_window = self._before
        if cand.label == self.idle:  # still from its first window's start
            boundary = cand.t_start
        elif cur.label == self.idle:  # still up to its last idle window's end
            boundary = cur.vote_end
        else:
            boundary = cand.centre
        done = self._close(cur, boundary)
        cand.t_start = done.t_end
        self._open, self._candidate = cand, None
        return done

    def flush(self) -> Segment | None:
        """Close the open segment (the end of the stream); None when there is none."""
        cur, self._open, self._candidate = self._open, None, None
        return None if cur is None else self._close(cur, cur.last_end)

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _start(label: str, score: float, t_start: float, t_end: float, seq: int) -> _Run:
        run = _Run(label, float(t_start), int(seq))
        Segmenter._add(run, score, t_end, seq, vote=True)
        return run

    @staticmethod
    def _add(run: _Run, score: float, t_end: float, seq: int, vote: bool) -> None:
        run.windows += 1
        run.last_end, run.last_window = max(run.last_end, float(t_end)), int(seq)
        if vote:
            run.votes += 1
            run.score_sum += score
            run.vote_end = max(run.vote_end, float(t_end))

    def _close(self, run: _Run, t_end: float) -> Segment:
        seg = Segment(seq=self.closed, label=run.label, t_start=run.t_start,
                      t_end=max(run.t_start, t_end), windows=run.windows, votes=run.votes,
                      score=run.score_sum / run.votes, first_window=run.first_window,
                      last_window=run.last_window)
        self.closed += 1
        return seg


def timeline_lines(segments, more: int = 0) -> list[str]:
    """The segments as text, one line each: start-end, label, windows, mean score;
    ``more``: segments left out (said in a last line)."""
    lines = []
    people = len({s.person for s in segments}) > 1
    for s in segments:
        other = f", {s.windows - s.votes} other" if s.votes < s.windows else ""
        who = f"person {s.person:<4d} " if people else ""
        lines.append(f"{s.t_start:9.2f} - {s.t_end:9.2f} s  {who}{s.label:<20s} "
                     f"{s.windows:5d} windows{other}  mean score {s.score:.2f}")
    if more:
        lines.append(f"... and {more} more segments (in --stats-json)")
    return lines
