"""``finetec-export``: a checkpoint's network as ONNX, checked against PyTorch.

    finetec-export penn --onnx penn.onnx            # the shipped model
    finetec-export mine.pt --onnx mine.onnx --windows 512

The network's inputs are what the NumPy preparation and the kernels compute
(``x``, ``mask``, ``interp``, ``dynamic``, ``kin``; see the README), so a runtime
other than PyTorch runs the network only. The export is then run on real windows
(the annotated test clips of the checkpoint's data set, where the data is here;
else a synthetic window, said so) and compared with PyTorch; the largest
difference per output is reported, and a difference above 1e-4 fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from finetec_live.cli.options import OneLineParser, _checked
from finetec_live.errors import FinetecError

log = logging.getLogger("finetec_live")
#: The annotated data set whose test clips give real windows of a layout.
REAL_WINDOWS = {"penn13": "penn", "jhmdb15": "jhmdb"}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-export", description=__doc__.splitlines()[0])
    p.add_argument("model", metavar="CKPT", help="checkpoint (.pt) or shipped name (penn, jhmdb)")
    p.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx",
                   help="where to write the ONNX network")
    p.add_argument("--windows", type=_checked("--windows", int, lambda v: 1 <= v <= 100_000,
                                              "in 1..100000"), default=256, metavar="N",
                   help="real windows to compare on (default 256)")
    p.add_argument("--data", metavar="ROOT", help="data root (default: FINETEC_DATA or "
                                                  "../shared/data)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def real_batch(rec, n: int, root=None):
    """A prepared batch of ``n`` real windows of ``rec``'s layout, and where they came from;
    ``(None, reason)`` when there are none here."""
    from finetec_live.serve.simulate import penn_windows

    dataset = REAL_WINDOWS.get(rec.layout)
    if dataset is None:
        return None, f"no annotated data set of layout {rec.layout} is known"
    try:
        windows, _ = penn_windows(n, float(rec.window_seconds), seed=0, root=root,
                                  dataset=dataset)
    except FinetecError as exc:
        return None, str(exc)
    groups = [(w.positions[None], w.frame_valid[None], w.joint_valid[None],
               w.timestamps[None]) for w in windows]
    return rec.prepare_groups(groups), f"{n} windows of {dataset}'s test clips"


def run(args: argparse.Namespace) -> int:
    from finetec_live.cli import parts
    from finetec_live.inference.onnx_network import (
        TOLERANCE,
        OnnxNetwork,
        export_onnx,
        max_differences,
        synthetic_batch,
    )

    rec = parts.load_recognizer(args.model, "cpu")
    batch, source = real_batch(rec, args.windows, args.data)
    names = export_onnx(rec, args.onnx)
    log.info("wrote %s (%s): inputs x, mask, interp, dynamic, kin; outputs %s; batch axis "
             "dynamic, T=%d", args.onnx, rec.model_id, ", ".join(names), rec.T)
    if batch is None:
        log.warning("comparing on a synthetic window only: %s", source)
        batch, source = synthetic_batch(rec), "1 synthetic window"
    diffs = max_differences(rec, OnnxNetwork(args.onnx), batch)
    log.info("onnxruntime against PyTorch on %s: largest difference %s", source,
             ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    worst = max(diffs.values())
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise FinetecError(f"the export differs from PyTorch by {worst:.3g} (more than "
                           f"{TOLERANCE:g}); report this with the checkpoint")
    return 0


def main(argv: list[str] | None = None) -> int:
    from finetec_live.cli import runtime

    return runtime.parse_and_run(build_parser, run, argv, log)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
