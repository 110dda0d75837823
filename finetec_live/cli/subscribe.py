"""``finetec-subscribe``: print the label stream of a running ``finetec-live``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from finetec_live.cli.options import OneLineParser
from finetec_live.errors import FinetecError
from finetec_live.wire.messages import unpack
from finetec_live.wire.publisher import (
    DEFAULT_BIND,
    check_endpoint,
    load_public_key,
    load_secret_key,
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-subscribe",
                      description="Print the labels (and optionally the heartbeats) published by "
                                  "finetec-live.")
    p.add_argument("--connect", default=DEFAULT_BIND, metavar="ENDPOINT",
                   help=f"publisher endpoint (default {DEFAULT_BIND})")
    p.add_argument("--json", action="store_true", help="one JSON object per line, with 'topic'")
    p.add_argument("--stream", default="", help="only this stream id (default: all)")
    p.add_argument("--status", action="store_true", help="also print status.<stream> heartbeats")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="exit after N label messages (default: run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0.0, metavar="S",
                   help="exit with status 1 when nothing arrives for S seconds (default: wait)")
    p.add_argument("--curve-server-key", metavar="FILE",
                   help="the publisher's public key (server.key) when it uses CURVE")
    p.add_argument("--curve-secret", metavar="FILE",
                   help="this client's key pair (client.key_secret); default: a fresh one")
    return p


def format_message(topic: str, msg: dict) -> str:
    """One human-readable line for a label or status payload."""
    if topic.startswith("label."):
        lat = msg.get("latency_ms", {})
        return (f"{msg['stream']} #{msg['seq']:<5d} {msg['t_start'] / 1e9:8.2f}-"
                f"{msg['t_end'] / 1e9:8.2f}s  {msg['label']:<20s} {msg['score']:.2f}  "
                f"missing {msg['missing']:.0%}{' (completed)' if msg['completed'] else ''}  "
                f"latency {lat.get('total', float('nan')):.1f} ms")
    return (f"{msg.get('stream', '?')} status: {msg.get('state', '?')}, {msg.get('fps', 0):.1f} "
            f"fps, {msg.get('frames', 0)} frames, {msg.get('pose_missing', 0)} without pose, "
            f"{msg.get('published', 0)} published, {msg.get('dropped_windows', 0)} dropped, "
            f"{msg.get('skipped_windows', 0)} skipped")


def run(args: argparse.Namespace) -> int:
    import zmq

    check_endpoint(args.connect, "--connect")
    if args.count < 0 or args.timeout < 0:
        raise FinetecError("--count and --timeout must be >= 0")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if args.curve_server_key:
        sock.curve_serverkey = load_public_key(args.curve_server_key)
        if args.curve_secret:
            public, secret = load_secret_key(args.curve_secret)
        else:
            public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
    topics = ["label."] + (["status."] if args.status else [])
    for t in topics:
        sock.setsockopt_string(zmq.SUBSCRIBE, t + args.stream)
    sock.connect(args.connect)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    n_labels, last = 0, time.monotonic()
    try:
        while True:
            if not poller.poll(200):
                if args.timeout and time.monotonic() - last > args.timeout:
                    print(f"error: nothing received from {args.connect} for {args.timeout:g} s; "
                          "is finetec-live running there?", file=sys.stderr)
                    return 1
                continue
            last = time.monotonic()
            topic_b, payload = sock.recv_multipart()[:2]
            topic = topic_b.decode("utf-8", "replace")
            msg = unpack(payload)
            if args.json:
                print(json.dumps({"topic": topic, **msg}), flush=True)
            else:
                print(format_message(topic, msg), flush=True)
            if topic.startswith("label."):
                n_labels += 1
                if args.count and n_labels >= args.count:
                    return 0
    finally:
        sock.close()


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
    except Exception as exc:  # a corrupt payload, a zmq failure: one line, no traceback
        print(f"error: {type(exc).__name__}: {exc}; check --connect and that the publisher is "
              "finetec-live", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
