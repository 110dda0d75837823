"""Opening the parts of a live run that a user names: the source and the model."""

from __future__ import annotations

import argparse
import threading

from finetec_live.errors import FinetecError


def load_recognizer(model: str | None, device: str):
    """The recognizer, or a :class:`FinetecError` naming the checkpoint problem."""
    import pickle

    try:
        from finetec_live.inference.recognizer import Recognizer
    except ImportError as exc:
        raise FinetecError(f"the recognizer cannot be imported ({exc}); reinstall finetec-live "
                           "with `pip install -e .`") from None
    try:
        rec = Recognizer.from_checkpoint(model, device=device)
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


def open_source(args: argparse.Namespace, stop: threading.Event):
    from finetec_live.live.recording import KeypointSource
    from finetec_live.live.sources import CameraSource, VideoSource

    if args.video is not None:
        return VideoSource(args.video, realtime=not args.fast, loop=args.loop, stop=stop)
    if args.keypoints is not None:
        return KeypointSource(args.keypoints, realtime=not args.fast, loop=args.loop, stop=stop)
    return CameraSource(args.camera, retry_seconds=args.camera_retry, stop=stop)
