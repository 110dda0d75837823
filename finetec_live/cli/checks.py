"""Checks of ``finetec-live``'s options that need no source or model: made before
anything is opened, so a mistake costs a second, not a whole run."""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

from finetec_live.cli.parts import check_backend
from finetec_live.errors import FinetecError
from finetec_live.inference.window import MAX_WINDOW_S, MIN_HOP_S

INPUTS = ("video", "keypoints")
OUTPUTS = ("output", "record", "stats_json", "jsonl")
DISPLAY_PROBE_TIMEOUT_S = 20.0


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked from the options alone; :class:`FinetecError` if not."""
    if args.window is not None and args.window > MAX_WINDOW_S:
        raise FinetecError(f"--window {args.window:g} s is longer than {MAX_WINDOW_S:g} s; "
                           "use a shorter window (the model sees 64 frames of any window)")
    if args.hop is not None and args.hop < MIN_HOP_S:
        raise FinetecError(f"--hop {args.hop:g} s is shorter than {MIN_HOP_S:g} s; use a hop of "
                           "at least one frame (e.g. --hop 0.04)")
    if args.hop is not None and args.window is not None and args.hop > args.window:
        raise FinetecError(f"--hop {args.hop:g} is longer than --window {args.window:g}: frames "
                           "between windows would never be classified; use a hop <= window")
    check_people(args.max_people, args.track_timeout)
    if args.serve and (args.model or args.jsonl or args.device != "auto" or args.onnx
                       or args.backend != "torch"):
        raise FinetecError("--serve sends the windows to finetec-serve, which runs the model and "
                           "publishes the labels: drop --model/--device/--backend/--onnx/--jsonl "
                           "here (give them to finetec-serve, and subscribe to its --bind)")
    check_backend(args.backend, args.onnx)
    check_paths(args)
    for name in OUTPUTS:
        target = getattr(args, name)
        if target and target != "-":
            check_writable(target, flag(name))


def check_people(max_people: int, track_timeout: float) -> None:
    """``--max-people`` in 1..MAX_PEOPLE and a sane ``--track-timeout``."""
    from finetec_live.live.multipose import MAX_PEOPLE

    if not 1 <= max_people <= MAX_PEOPLE:
        raise FinetecError(f"--max-people {max_people} is out of range; use 1 to {MAX_PEOPLE} "
                           "(each person costs a pose model run per frame)")
    if not track_timeout <= MAX_WINDOW_S:
        raise FinetecError(f"--track-timeout {track_timeout:g} s is longer than "
                           f"{MAX_WINDOW_S:g} s; use a few seconds at most")


def check_window(window_s: float, hop_s: float, fps: float, min_frames: int) -> None:
    """The window and hop in force (options or the checkpoint's) against the source's rate."""
    if not (math.isfinite(window_s) and math.isfinite(hop_s)) or window_s > MAX_WINDOW_S:
        raise FinetecError(f"a window of {window_s:g} s every {hop_s:g} s is out of range; use "
                           f"--window up to {MAX_WINDOW_S:g} and --hop up to the window")
    if hop_s > window_s:
        raise FinetecError(f"--hop {hop_s:g} is longer than the window ({window_s:g} s); "
                           "use a hop <= window")
    if window_s * fps < min_frames:
        raise FinetecError(f"--window {window_s:g} s holds fewer than the {min_frames} frames "
                           f"the model needs at {fps:g} fps; use --window "
                           f"{math.ceil(100 * min_frames / fps) / 100:g} or more")
    if hop_s * fps < 0.999:
        raise FinetecError(f"--hop {hop_s:g} s is shorter than one frame at {fps:g} fps: "
                           f"windows would repeat the same frames; use --hop "
                           f"{math.ceil(100 / fps) / 100:g} or more")


def _same_file(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_paths(args: argparse.Namespace) -> None:
    """No output may overwrite an input or another output."""
    named = [(flag(n), getattr(args, n)) for n in INPUTS + OUTPUTS]
    named = [(f, p) for f, p in named if p and p != "-"]
    if args.model and Path(args.model).suffix:
        named.insert(0, ("--model", args.model))
    outputs = {flag(n) for n in OUTPUTS}
    for i, (fa, pa) in enumerate(named):
        for fb, pb in named[i + 1:]:
            if fb in outputs and _same_file(pa, pb):
                raise FinetecError(f"{fb} {pb} is the same file as {fa}: it would be "
                                   f"overwritten; choose another path for {fb}")


def check_writable(path: str, option: str) -> None:
    """Create-or-append ``path`` once (removing it again if it did not exist), so a path
    that cannot be written is found now rather than at the end of the run."""
    p = Path(path)
    if p.is_dir():
        raise FinetecError(f"{option} {p} is a folder; pass a file path")
    if not p.parent.is_dir():
        raise FinetecError(f"{option} folder {p.parent} does not exist; create it or choose "
                           "another path")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise FinetecError(f"cannot write {option} file {p} ({exc.strerror}); choose a "
                           "writable path") from None
    if not existed:
        p.unlink(missing_ok=True)


def check_display() -> None:
    """Open and close a window in a child process: an unreachable display makes Qt
    abort the process that tries, so it must not be this one."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FinetecError("--show needs a graphical display (DISPLAY is not set); use "
                           "--output FILE to write the annotated video, or --no-display")
    probe = ("import cv2; cv2.namedWindow('finetec-live'); cv2.waitKey(1); "
             "cv2.destroyAllWindows()")
    try:
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=DISPLAY_PROBE_TIMEOUT_S)
        ok = r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise FinetecError(f"--show cannot open a window on display {where!r} (unreachable, "
                           "or no permission); check DISPLAY, or use --output FILE or "
                           "--no-display")
