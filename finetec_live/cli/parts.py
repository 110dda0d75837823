"""Opening the parts of a live run that a user names: the source and the model."""

from __future__ import annotations

import argparse
import logging
import threading

from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)


def load_recognizer(model: str | None, device: str, precision: str = "fp32"):
    """The recognizer, or a :class:`FinetecError` naming the checkpoint problem
    (``precision``: see :meth:`Recognizer.from_checkpoint`)."""
    import pickle

    try:
        from finetec_live.inference.recognizer import Recognizer
    except ImportError as exc:
        raise FinetecError(f"the recognizer cannot be imported ({exc}); reinstall finetec-live "
                           "with `pip install -e .`") from None
    try:
        rec = Recognizer.from_checkpoint(model, device=device, precision=precision)
    except FinetecError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError,
            pickle.UnpicklingError) as exc:
        raise FinetecError(f"cannot load checkpoint {model or 'penn'} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); pass --model with a "
                           "finetec-live checkpoint (.pt) or a shipped name such as penn") from None
    from finetec_live.skeleton.layouts import mapping_matrix

    mapping_matrix("mediapipe33", rec.layout)  # FinetecError when the layout cannot be fed
    return rec


def check_backend(backend: str, onnx: str | None, precision: str = "fp32") -> str:
    """``--onnx`` only with ``--backend onnxruntime``, which runs in fp32; returns the
    precision to load the torch model with."""
    if onnx and backend != "onnxruntime":
        raise FinetecError("--onnx is the network for --backend onnxruntime; add "
                           "--backend onnxruntime or leave --onnx out")
    if backend == "onnxruntime":
        if precision == "bf16":
            raise FinetecError("--precision bf16 is for --backend torch; onnxruntime runs "
                               "the export in fp32: leave --precision out or use torch")
        return "fp32"
    return precision


def use_backend(rec, backend: str, onnx: str | None) -> None:
    """``--backend`` / ``--onnx`` on a loaded recognizer: onnxruntime runs the network with
    torch's thread count (set before this), from ``onnx`` or the cache's export."""
    check_backend(backend, onnx)
    if backend != "onnxruntime":
        return
    import torch

    diffs = rec.use_onnx(onnx, threads=torch.get_num_threads())
    log.info("network on onnxruntime (%s), within %.1e of PyTorch", rec.onnx.path,
             max(diffs.values()))


def configure_open_set(rec, wanted: bool) -> None:
    """``--open-set`` / ``--no-open-set`` on the recognizer: the decision is on when it is
    wanted and the checkpoint has a calibration."""
    rec.open_set_enabled = bool(wanted and rec.open_set is not None)


def warn_closed_set(rec, wanted: bool, model: str | None) -> None:
    """One warning when the decision is wanted but the checkpoint has no calibration (the
    labels are then its classes); said once the run is open, so a refused option is the
    only line a refused run prints."""
    if wanted and rec.open_set is None:
        log.warning("checkpoint %s has no open-set calibration: labels are closed-set (always "
                    "one of its %d classes, never unknown or idle); calibrate it with `python "
                    "tools/calibrate.py --checkpoint FILE` and pass --model FILE",
                    model or "penn", len(rec.class_names))


def open_set_summary(rec) -> dict:
    """What ``--stats-json`` says about the decision in force."""
    on = rec.open_set is not None and rec.open_set_enabled
    out: dict = {"enabled": on, "calibrated": rec.open_set is not None}
    if on:
        out.update(unknown_below=rec.open_set.unknown_below, idle_floor=rec.open_set.idle_floor,
                   hold_below=rec.open_set.hold_below)
    return out


def open_source(args: argparse.Namespace, stop: threading.Event):
    from finetec_live.live.recording import KeypointSource
    from finetec_live.live.sources import CameraSource, VideoSource

    if args.video is not None:
        return VideoSource(args.video, realtime=not args.fast, loop=args.loop, stop=stop)
    if args.keypoints is not None:
        return KeypointSource(args.keypoints, realtime=not args.fast, loop=args.loop, stop=stop)
    return CameraSource(args.camera, retry_seconds=args.camera_retry, stop=stop)
