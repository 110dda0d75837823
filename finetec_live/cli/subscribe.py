"""``finetec-subscribe``: print the labels and segments of a running ``finetec-live``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from finetec_live.cli.options import OneLineParser
from finetec_live.errors import FinetecError
from finetec_live.wire.endpoints import DEFAULT_BIND
from finetec_live.wire.messages import (
    OPEN_SET_LABELS,
    LabelMessage,
    SegmentMessage,
    StatusMessage,
)

REPORT_EVERY_S = 5.0  # at most one stderr line about malformed messages this often


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-subscribe",
                      description="Print the labels, segments (and optionally the heartbeats) "
                                  "published by finetec-live.")
    p.add_argument("--connect", default=DEFAULT_BIND, metavar="ENDPOINT",
                   help=f"publisher endpoint (default {DEFAULT_BIND})")
    p.add_argument("--json", action="store_true", help="one JSON object per line, with 'topic'")
    p.add_argument("--stream", default="", help="only this stream id (default: all)")
    p.add_argument("--labels", action=argparse.BooleanOptionalAction, default=True,
                   help="print label.<stream>, one per window (default on)")
    p.add_argument("--segments", action=argparse.BooleanOptionalAction, default=True,
                   help="print segment.<stream>, one per stretch of one label (default on)")
    p.add_argument("--status", action="store_true", help="also print status.<stream> heartbeats")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="exit after N label and segment messages (those printed; default: "
                        "run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0.0, metavar="S",
                   help="exit with status 1 when nothing arrives for S seconds (default: wait)")
    p.add_argument("--curve-server-key", metavar="FILE",
                   help="the publisher's public key (server.key) when it uses CURVE")
    p.add_argument("--curve-secret", metavar="FILE",
                   help="this client's key pair (client.key_secret, listed in the publisher's "
                        "--curve-clients); default: a fresh one, accepted only by a publisher "
                        "with --curve-any-client or on loopback")
    return p


def format_message(message: LabelMessage | SegmentMessage | StatusMessage) -> str:
    """One human-readable line for a label, segment or status message. An ``unknown``
    or ``idle`` label names the best class after it; a person other than 0 (several
    people in view) is named after the stream."""
    m = message
    name = m.stream
    if isinstance(m, LabelMessage | SegmentMessage) and m.person:
        name = f"{m.stream} person {m.person}"
    if isinstance(m, LabelMessage):
        best = ""
        if m.label in OPEN_SET_LABELS and m.topk:
            best = f" (best class {m.topk[0][0]} {m.topk[0][1]:.2f})"
        return (f"{name} #{m.seq:<5d} {m.t_start / 1e9:8.2f}-{m.t_end / 1e9:8.2f}s  "
                f"{m.label:<20s} {m.score:.2f}{best}  missing {m.missing:.0%}"
                f"{' (completed)' if m.completed else ''}  "
                f"latency {m.latency_ms['total']:.1f} ms")
    if isinstance(m, SegmentMessage):
        other = f", {m.windows - m.votes} other" if m.votes < m.windows else ""
        return (f"{name} segment #{m.seq:<4d} {m.t_start / 1e9:8.2f}-"
                f"{m.t_end / 1e9:8.2f}s  {m.label:<20s} {m.score:.2f}  "
                f"{m.windows} windows{other} (#{m.first_window}-#{m.last_window})")
    people = m.extra.get("people")
    who = f", {people} in view" if isinstance(people, int) and m.extra.get(
        "tracks_started", 0) > 1 else ""
    return (f"{m.stream} status: {m.state}, {m.fps:.1f} fps, {m.frames} frames, "
            f"{m.pose_missing} without pose, {m.published} published, "
            f"{m.dropped_windows} dropped, {m.skipped_windows} skipped{who}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from finetec_live.wire.subscriber import ThrottledReport, open_subscriber

    if args.count < 0 or args.timeout < 0:
        raise FinetecError("--count and --timeout must be >= 0")
    kinds = [k for k, on in (("label", args.labels), ("segment", args.segments),
                             ("status", args.status)) if on]
    if not kinds:
        raise FinetecError("--no-labels and --no-segments leave nothing to print; keep one "
                           "of them or add --status")
    topics = [f"{k}.{args.stream}" for k in kinds]
    sub = open_subscriber(args.connect, topics=topics, curve_server_key=args.curve_server_key,
                          curve_secret=args.curve_secret)
    report = ThrottledReport(_stderr, interval_s=REPORT_EVERY_S)
    n_printed, last = 0, time.monotonic()
    try:
        while True:
            got = sub.receive(200)
            report.update(sub.malformed, sub.last_error)
            if got is None:
                if args.timeout and time.monotonic() - last > args.timeout:
                    _stderr(f"error: nothing received from {args.connect} for "
                            f"{args.timeout:g} s; is finetec-live running there?")
                    return 1
                continue
            last = time.monotonic()
            if args.json:
                line = json.dumps({"topic": got.topic, **got.message.to_dict()}, allow_nan=False)
            else:
                line = format_message(got.message)
            print(line, flush=True)
            if got.kind != "status":
                n_printed += 1
                if args.count and n_printed >= args.count:
                    return 0
    finally:
        sub.close()
        if sub.malformed:
            _stderr(f"finetec-subscribe: {sub.malformed} malformed messages ignored "
                    f"({sub.received} good)")
        if sub.gaps.total:
            per = ", ".join(f"{k} {n} in {sub.gaps.gaps[k]} gap(s)"
                            for k, n in sorted(sub.gaps.missing.items()))
            _stderr(f"finetec-subscribe: {sub.gaps.total} windows without a label between "
                    f"those received (gaps in seq: {per}); the status heartbeats count the "
                    "dropped and skipped ones, the rest were lost on the way")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a zmq failure: one line, no traceback
        print(f"error: {type(exc).__name__}: {exc}; check --connect and that the publisher is "
              "finetec-live", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
