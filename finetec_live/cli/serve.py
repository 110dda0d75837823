"""``finetec-serve``: window messages from many producers in, batched inference, labels out.

    finetec-serve --listen tcp://127.0.0.1:5558 --bind tcp://127.0.0.1:5557
    finetec-live --camera 0 --serve tcp://127.0.0.1:5558      # an edge producer

See :mod:`finetec_live.serve.server` and the README's window message.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import zmq

from finetec_live.cli.options import (
    OneLineParser,
    _checked,
    _positive,
    _publishing_options,
    backend_options,
    smooth_option,
)

log = logging.getLogger("finetec_live")
DEFAULT_LISTEN = "tcp://127.0.0.1:5558"
MAX_BATCH = 4096


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-serve", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ENDPOINT",
                   help=f"PULL endpoint producers PUSH window messages to (default "
                        f"{DEFAULT_LISTEN})")
    p.add_argument("--model", metavar="PATH", help="checkpoint or shipped name (default penn)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    backend_options(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the torch network's arithmetic (default auto: bf16 on a CPU with "
                        "bf16 matrix units or instructions (AMX, AVX-512 BF16), where batches "
                        "run faster, else fp32)")
    batch = _checked("--max-batch", int, lambda v: 1 <= v <= MAX_BATCH, f"in 1..{MAX_BATCH}")
    p.add_argument("--max-batch", type=batch, default=64, metavar="N",
                   help="windows per batch at most (default 64)")
    p.add_argument("--max-wait-ms", type=_checked("--max-wait-ms", float,
                                                  lambda v: 0 <= v <= 1000, "in 0..1000"),
                   default=20.0, metavar="MS",
                   help="wait at most MS after a batch's first window for more (default 20)")
    p.add_argument("--max-age-ms", type=_positive("--max-age-ms"), default=500.0, metavar="MS",
                   help="drop (and count) windows that waited longer than MS when their batch "
                        "is taken (default 500: by then the stream's next window is due)")
    p.add_argument("--threads", type=_checked("--threads", int, lambda v: v >= 1, ">= 1"),
                   metavar="N", help="torch threads (default: torch's, one per core)")
    p.add_argument("--topk", type=_checked("--topk", int, lambda v: v >= 1, ">= 1"), default=5)
    p.add_argument("--open-set", action=argparse.BooleanOptionalAction, default=True)
    smooth_option(p)
    _publishing_options(p, stream=False)
    p.add_argument("--stats-json", metavar="FILE", help="write the counters at exit")
    p.add_argument("--max-seconds", type=_positive("--max-seconds"), metavar="S")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def run(args: argparse.Namespace) -> int:
    from finetec_live.cli import parts, runtime
    from finetec_live.serve.server import Server, open_puller
    from finetec_live.wire.endpoints import parse_endpoint
    from finetec_live.wire.publisher import _check_security, open_publisher

    _check_security(parse_endpoint(args.listen, "--listen"), args.curve_secret,
                    args.curve_clients, args.curve_any_client, args.insecure, "--listen")
    precision = parts.check_backend(args.backend, args.onnx, args.precision)
    rec = parts.load_recognizer(args.model, args.device, precision)  # after the cheap checks
    parts.configure_open_set(rec, args.open_set)
    if args.threads:  # no pose estimation here: the model may have every core
        import torch

        torch.set_num_threads(args.threads)
    parts.use_backend(rec, args.backend, args.onnx)
    publisher = open_publisher(args.bind, curve_secret=args.curve_secret,
                               curve_clients=args.curve_clients,
                               any_client=args.curve_any_client, insecure=args.insecure)
    # an allow-list needs an authenticator of its own context (it answers for all its sockets)
    ctx = zmq.Context() if args.curve_clients else zmq.Context.instance()
    try:
        puller, auth = open_puller(ctx, args.listen, args.insecure, args.curve_secret,
                                   args.curve_clients, args.curve_any_client)
    except BaseException:
        publisher.close()
        raise
    from finetec_live.inference.smoothing import Smoother

    server = Server(rec, puller, publisher, auth=auth, max_batch=args.max_batch,
                    max_wait_s=args.max_wait_ms / 1e3, max_age_s=args.max_age_ms / 1e3,
                    topk=args.topk, smoother=Smoother(args.smooth, float(rec.hop_seconds)))
    from finetec_live.live.worker import warm_up

    # the first batches would pay for Numba's compilation and torch's first calls, and
    # the windows waiting meanwhile would go stale
    log.debug("warm-up: %.2f s", warm_up(rec, float(rec.window_seconds), 30.0,
                                          batch=min(args.max_batch, 64)))
    stop = threading.Event()
    signals = runtime.StopOnSignal(stop)
    signals.install()
    log.info("serving window messages on %s, labels on %s; model %s (%s) on %s (%s, %s); "
             "batches of up to %d windows or %.0f ms", server.endpoint, publisher.endpoint,
             rec.model_id, rec.layout, rec.device, rec.backend,
             rec.network_precision, args.max_batch,
             args.max_wait_ms)
    server.start()
    t0 = time.monotonic()
    try:
        while not stop.is_set() and not server.stop.is_set():
            server.step()
            if args.max_seconds and time.monotonic() - t0 >= args.max_seconds:
                break
    finally:
        server.close()
        publisher.close()
        signals.restore()
    s = server.summary()
    log.info("end: %d windows received, %d labelled, %d dropped (stale or over capacity), "
             "%d skipped, %d refused (another layout), %d malformed messages, %d batches",
             s["received"], s["published"], s["dropped"], s["skipped"], s["refused"],
             sum(s["malformed"].values()), s["batches"])
    if server.error is not None:
        raise server.error
    if args.stats_json:
        from finetec_live.cli.outputs import write_stats

        write_stats(args.stats_json, s)
    return 0


def main(argv: list[str] | None = None) -> int:
    from finetec_live.cli import runtime

    return runtime.parse_and_run(build_parser, run, argv, log)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
