"""Command-line options of ``finetec-live`` (and its ``keygen`` command): the parsers,
their value checks, and one-line usage errors."""

from __future__ import annotations

import argparse
import math

EPILOG = """\
examples:
  finetec-live --video clip.mp4 --no-display --jsonl -      labels as JSON lines on stdout
  finetec-live --camera 0 --show                            webcam, with a preview window
  finetec-live --video clip.mp4 --fast --drop 0.5 --seed 1  drop half the frames after pose
  finetec-live --video clip.mp4 --record poses.fkp          keep the poses for replay
  finetec-live --keypoints poses.fkp --fast                 replay them without video
  finetec-live keygen keys/                                 CURVE keys for --bind tcp://*:5557
  finetec-live --video clip.mp4 --no-open-set               classes only, never unknown/idle
  finetec-live --video clip.mp4 --smooth 1                  each window's label on its own
  finetec-live --camera 0 --max-people 4                    up to four people, one track each
  finetec-subscribe --connect tcp://127.0.0.1:5557          print the labels and segments
  finetec-subscribe --no-labels                             print the segments only
"""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the problem, exit 2."""

    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _checked(name: str, parse, ok, rule: str):
    """An argparse converter: ``parse`` the text, then require ``ok(value)`` (``rule`` says
    what in the error)."""
    kind = "an integer" if parse is int else "a number"

    def conv(text: str):
        try:
            v = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} needs {kind}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{name} must be {rule}, got {text}")
        return v
    return conv


def _positive(name: str):
    return _checked(name, float, lambda v: math.isfinite(v) and v > 0, "> 0")


def _fraction(name: str, upper_open: bool):
    if upper_open:
        return _checked(name, float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    return _checked(name, float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def _positive_int(name: str):
    return _checked(name, int, lambda v: v >= 1, ">= 1")


def backend_options(group) -> None:
    """``--backend`` and ``--onnx``, for finetec-live and finetec-serve."""
    group.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                       help="what runs the network (default torch); onnxruntime runs the "
                            "checkpoint's ONNX export (--onnx, or one made in the cache)")
    group.add_argument("--onnx", metavar="FILE",
                       help="the checkpoint's finetec-export, for --backend onnxruntime")


def smooth_option(group) -> None:
    """``--smooth``, for finetec-live and finetec-serve."""
    from finetec_live.inference.smoothing import DEFAULT_WINDOWS

    group.add_argument("--smooth", type=_positive_int("--smooth"), default=DEFAULT_WINDOWS,
                       metavar="K", help="decide on the mean class probabilities of each "
                                         "person's last K windows, so labels flicker less and "
                                         "follow a change of action about (K-1)/2 hops later "
                                         f"(default {DEFAULT_WINDOWS}; 1: each window alone; "
                                         "with --serve, the server's --smooth applies)")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-live", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Recognise the action of the person in view, window by window, "
                                  "and publish the labels over ZeroMQ (msgpack). Frames without a "
                                  "pose are missing frames; the model completes them. "
                                  "`finetec-live keygen DIR` writes CURVE keys.")
    src = p.add_argument_group("source (one of)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--camera", metavar="N", help="camera index (0) or device (/dev/video0)")
    one.add_argument("--video", metavar="FILE", help="video file, replayed at its frame rate")
    one.add_argument("--keypoints", metavar="FILE", help="replay a pose recording (--record)")
    src.add_argument("--fast", action="store_true",
                     help="replay files as fast as the pipeline goes, every window classified "
                          "(default: at the file's frame rate, dropping windows when behind)")
    src.add_argument("--loop", action="store_true", help="restart files at their end")
    src.add_argument("--record", metavar="FILE", help="also write the poses to FILE for replay")
    src.add_argument("--camera-retry", type=_positive("--camera-retry"), default=10.0,
                     metavar="S", help="end the run when a camera delivers no frame for S "
                                       "seconds, reopening it meanwhile (default 10)")
    src.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="one updating line on stderr while replaying a file: source time, "
                          "windows, the latest label (default: when stderr is a terminal)")

    pose = p.add_argument_group("pose and corruption")
    pose.add_argument("--min-visibility", type=_fraction("--min-visibility", False), default=0.5,
                      metavar="V", help="joints below this MediaPipe visibility are missing "
                                        "(default 0.5)")
    pose.add_argument("--max-people", type=int, default=1, metavar="N",
                      help="people to follow at once, each with a track id, windows and labels "
                           "(default 1; more uses MediaPipe's multi-person landmarker)")
    pose.add_argument("--track-timeout", type=_positive("--track-timeout"), default=2.0,
                      metavar="S", help="with --max-people > 1: a track unseen for S seconds "
                                        "ends (default 2; shorter gaps are missing frames)")
    pose.add_argument("--drop", type=_fraction("--drop", True), default=0.0, metavar="R",
                      help="drop a fraction R of the frames after pose estimation (default 0)")
    pose.add_argument("--seed", type=_checked("--seed", int, lambda v: 0 <= v < 2**63, ">= 0"),
                      default=0, help="seed of --drop (default 0)")

    model = p.add_argument_group("model and windows")
    model.add_argument("--model", metavar="PATH",
                       help="checkpoint file, or a shipped name (penn, jhmdb); default penn")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the model runs (default auto: CUDA when present)")
    backend_options(model)
    model.add_argument("--window", type=_positive("--window"), metavar="S",
                       help="window length in seconds, at most 60 (default: the checkpoint's)")
    model.add_argument("--hop", type=_positive("--hop"), metavar="S",
                       help="seconds between windows, at least one frame (default: the "
                            "checkpoint's)")
    model.add_argument("--min-valid", type=_fraction("--min-valid", False), default=0.2,
                       metavar="F", help="classify a window only when at least this fraction "
                                         "of its frames have a pose (default 0.2)")
    model.add_argument("--topk", type=_positive_int("--topk"), default=5, metavar="K",
                       help="labels in the message's topk list (default 5)")
    model.add_argument("--serve", metavar="ENDPOINT",
                       help="edge mode: send the windows to the finetec-serve listening at "
                            "ENDPOINT (its labels are published there) instead of running the "
                            "model here; --window/--hop must match its model's (default 2.5/0.5)")
    model.add_argument("--open-set", action=argparse.BooleanOptionalAction, default=True,
                       help="label a window 'unknown' (like none of the classes) or 'idle' "
                            "(nobody moving) by the checkpoint's calibrated thresholds "
                            "(default on; without a calibration the labels are its classes)")
    smooth_option(model)

    _publishing_options(p.add_argument_group("publishing"))
    out = p.add_argument_group("outputs")
    out.add_argument("--show", action="store_true", help="show the skeleton, label and fps")
    out.add_argument("--output", metavar="FILE", help="write the annotated video to FILE")
    out.add_argument("--no-display", action="store_true", help="no window (overrides --show)")
    out.add_argument("--jsonl", metavar="FILE", help="also write every label as a JSON line "
                                                     "('-' for stdout)")
    out.add_argument("--stats-json", metavar="FILE", help="write run statistics at exit")
    out.add_argument("--max-seconds", type=_positive("--max-seconds"), metavar="S",
                     help="stop after S seconds of running")
    out.add_argument("--log-level", default="INFO", type=str.upper,
                     choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="logging on stderr (default INFO)")
    return p


def _publishing_options(pub, stream: bool = True) -> None:
    """The socket, the stream id (``stream``) and CURVE."""
    pub.add_argument("--bind", default="tcp://127.0.0.1:5557", metavar="ENDPOINT",
                     help="ZeroMQ PUB endpoint (default tcp://127.0.0.1:5557)")
    if stream:
        pub.add_argument("--stream", metavar="ID", help="stream id in the topics (default: "
                                                        "from the source name)")
    pub.add_argument("--curve-secret", metavar="FILE",
                     help="server key pair (server.key_secret from `finetec-live keygen`)")
    pub.add_argument("--curve-clients", metavar="DIR",
                     help="accept only the client public keys (*.key) in DIR (with CURVE)")
    pub.add_argument("--curve-any-client", action="store_true",
                     help="with CURVE beyond loopback, accept any subscriber holding server.key "
                          "(encryption only, no allow-list)")
    pub.add_argument("--insecure", action="store_true",
                     help="allow a non-loopback --bind without CURVE encryption")


def build_keygen_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-live keygen",
                      description="Write CURVE key pairs: DIR/server.key(_secret) for finetec-live "
                                  "--curve-secret, DIR/client.key(_secret) for subscribers.")
    p.add_argument("dir", metavar="DIR", help="folder for the key files (created)")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    return p
