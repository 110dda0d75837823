"""What ``finetec-live`` writes besides the label stream: JSON lines, run statistics, the
end line and the end-of-file timeline of segments."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

from finetec_live.errors import FinetecError

TIMELINE_LINES = 200  # segments printed at the end of a file (all go to --stats-json)


def write_error(option: str, path: str | os.PathLike, exc: OSError) -> FinetecError:
    """The one-line error for a failed write (a full disk named as such)."""
    if exc.errno == errno.ENOSPC:
        return FinetecError(f"the disk is full: cannot write {option} file {path}; free some "
                            "space or choose a path on another disk")
    return FinetecError(f"cannot write {option} file {path} ({exc.strerror or exc}); choose a "
                        "writable path")


class JsonlWriter:
    """Every label as one JSON line, to a file or ``-`` (stdout)."""

    def __init__(self, target: str) -> None:
        self.target = target
        if target == "-":
            self.fh, self.own = sys.stdout, False
        else:
            try:
                self.fh, self.own = open(target, "w", encoding="utf-8"), True
            except OSError as exc:
                raise write_error("--jsonl", target, exc) from None

    def __call__(self, result) -> None:
        try:
            self.fh.write(json.dumps(result.message.to_dict()) + "\n")
            self.fh.flush()
        except BrokenPipeError:  # e.g. `| head`: stop writing, keep running
            self.fh = open(os.devnull, "w")
            self.own = True
        except OSError as exc:
            raise write_error("--jsonl", self.target, exc) from None

    def close(self) -> None:
        if self.own:
            self.fh.close()


def write_stats(path: str, payload: dict) -> None:
    try:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise write_error("--stats-json", path, exc) from None


def summary_line(why: str, s: dict) -> str:
    """The end-of-run line: where every frame tick and every window went."""
    ticks = (f"{s['frames']} frame ticks in {s['elapsed_s']:.1f} s ({s['fps']:.1f} fps): "
             f"{s['pose_missing']} without pose, {s['lagged']} lagged (pose busy), "
             f"{s['gap_ticks']} in gaps of the source")
    if s.get("drop_injected"):
        ticks += f", {s['drop_injected']} dropped by --drop"
    if s.get("bad_ticks"):
        ticks += f", {s['bad_ticks']} unusable records skipped"
    out, behind = ((f"sent to finetec-serve at {s['serve']}", "server unreachable or behind")
                   if s.get("serve") else ("published", "inference behind"))
    line = (f"{why}: {ticks}; {s['windows']} windows: {s['published']} {out}, "
            f"{s['dropped_windows']} dropped ({behind}), {s['skipped_windows']} "
            "skipped (too few posed frames)")
    if s.get("empty_windows"):
        line += f"; {s['empty_windows']} more inside gaps of {s['gap_seconds']:.3g} s, empty"
    return line


def stats_payload(s: dict, live) -> dict:
    """``s`` (the counters) with what the run was: stream, model, window, source, output."""
    rec, args = live.rec, live.args
    s.update(stopped_by=live.signals.why, stream=live.stream)
    if live.sender is not None:  # edge mode: the model is the server's
        s.update(serve=live.sender.endpoint, layout=rec.layout, window_s=live.window_s,
                 hop_s=live.hop_s)
    elif rec is not None:
        from finetec_live.cli.parts import open_set_summary

        s.update(model=rec.model_id, layout=rec.layout, device=rec.device,
                 window_s=live.window_s, hop_s=live.hop_s, open_set=open_set_summary(rec),
                 smoothed_windows=args.smooth)
    if live.people is not None:
        s.update(max_people=args.max_people, tracks=live.people.summary())
        if live.people.tracker is not None:
            s.update(stray_poses=live.people.tracker.stray_poses,
                     track_timeout_s=args.track_timeout)
    if live.worker is not None:
        s.update(segments_published=live.worker.segments_published,
                 segments=[seg.to_dict() for seg in live.worker.segments])
    source = live.source
    if source is not None:
        s.update(source_fps=source.fps,
                 source_truncated=bool(getattr(source, "truncated", False)))
        if getattr(source, "frame_count", 0):
            s.update(source_frames=source.frame_count)
        if getattr(source, "skipped", None):
            s.update(bad_ticks_by_reason=dict(source.skipped))
        if getattr(source, "bad_joints", 0):
            s.update(bad_joints=int(source.bad_joints))
    if live.display is not None and live.display.output is not None:
        s.update(output_frames=live.display.written)
    s.update(drop=args.drop, seed=args.seed)
    return s


def timeline(worker, stream: str) -> str:
    """The segments of a run as text: a heading, then one line per segment (the first
    :data:`TIMELINE_LINES`)."""
    from finetec_live.live.segments import timeline_lines

    segs = list(worker.segments)
    shown = segs[:TIMELINE_LINES]
    lost = worker.segments_published - len(segs)  # beyond what the worker keeps
    n = worker.segments_published
    head = (f"timeline of {stream}: {n} segment{'' if n == 1 else 's'}"
            + (f" (the first {lost} not kept)" if lost else ""))
    return "\n".join([head, *timeline_lines(shown, more=len(segs) - len(shown))])
