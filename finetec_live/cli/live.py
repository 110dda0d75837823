"""``finetec-live``: camera or video -> pose -> windows -> recognizer -> ZeroMQ labels.

The command composes the library's steps: a source, the pose estimator, the
ring buffer and windower, the recognizer and the publisher. Capture and pose
run on the main thread, kernels and model on a second thread, with a bounded
hand-off between them that drops stale windows.

``finetec-live keygen DIR`` writes CURVE key pairs for non-loopback publishing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from finetec_live.cli.options import build_parser
from finetec_live.errors import FinetecError

log = logging.getLogger("finetec_live")
COMPLETION_DISPLAY_S = 0.25  # how long a window's completed pose may stand in for a frame
# Nice value added to the capture/pose thread in live runs (FINETEC_CAPTURE_NICE=0: off).
# Measured on 2 loaded cores, 30 s real-time replays: window latency p95 23-25 ms at
# nice 0, 11-20 ms at nice 5, for a few more frames lost to pose falling behind.
CAPTURE_NICE = int(os.environ.get("FINETEC_CAPTURE_NICE", "5") or 0)

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


class _JsonlWriter:
    def __init__(self, target: str) -> None:
        if target == "-":
            self.fh, self.own = sys.stdout, False
        else:
            try:
                self.fh, self.own = open(target, "w", encoding="utf-8"), True
            except OSError as exc:
                raise FinetecError(f"cannot write --jsonl file {target} ({exc.strerror}); "
                                   "choose a writable path") from None

    def __call__(self, result) -> None:
        try:
            self.fh.write(json.dumps(result.message.to_dict()) + "\n")
            self.fh.flush()
        except BrokenPipeError:  # e.g. `| head`: stop writing, keep running
            self.fh = open(os.devnull, "w")
            self.own = True

    def close(self) -> None:
        if self.own:
            self.fh.close()


def _write_stats(path: str, payload: dict) -> None:
    try:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise FinetecError(f"cannot write --stats-json file {path} ({exc.strerror}); choose a "
                           "writable path") from None


def run(args: argparse.Namespace) -> int:
    """One live session; returns the exit status."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from finetec_live.live.buffer import RingBuffer, Windower
    from finetec_live.live.handoff import Handoff
    from finetec_live.live.pose import Pose
    from finetec_live.live.stats import Stats
    from finetec_live.live.worker import InferenceWorker, enough_valid, warm_up
    from finetec_live.wire.messages import check_stream_name
    from finetec_live.wire.publisher import Publisher, start_authenticator

    if args.hop is not None and args.window is not None and args.hop > args.window:
        raise FinetecError(f"--hop {args.hop:g} is longer than --window {args.window:g}: frames "
                           "between windows would never be classified; use a hop <= window")
    for name in ("stats_json", "jsonl", "record", "output"):
        target = getattr(args, name)
        if target and target != "-" and not Path(target).resolve().parent.is_dir():
            raise FinetecError(f"--{name.replace('_', '-')} folder {Path(target).parent} does "
                               "not exist; create it or choose another path")
    stop = threading.Event()
    stopped_by = {"why": "end"}

    def on_signal(signum, _frame):
        if stop.is_set() and stopped_by["why"] == signal.Signals(signum).name:
            os._exit(128 + signum)  # a second signal while stopping: give up at once
        stopped_by["why"] = signal.Signals(signum).name
        # Not stop.set() here: the handler runs on the main thread, which may be
        # inside stop.wait() holding the event's (non-reentrant) lock; setting it
        # from here would deadlock. A helper thread sets it once the lock is free.
        threading.Thread(target=stop.set, name="stop-on-signal", daemon=True).start()

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    source = publisher = auth = estimator = recorder = display = jsonl = worker = None
    restore_stderr = None
    thread = None
    stats = Stats()
    stats_written = False
    try:
        source = open_source(args, stop)
        stream = args.stream or source.name
        try:
            check_stream_name(stream)
        except ValueError as exc:
            raise FinetecError(f"{exc}; pass --stream with such a name") from None
        show = args.show and not args.no_display
        if show or args.output:
            from finetec_live.live.display import Display

            display = Display(show, args.output, source.fps, title=f"finetec-live {stream}")
        if args.curve_clients:  # the authenticator must run before the socket binds
            if not args.curve_secret:
                raise FinetecError("--curve-clients needs --curve-secret (the server key pair)")
            import zmq

            auth = start_authenticator(zmq.Context.instance(), args.curve_clients)
        publisher = Publisher(args.bind, curve_secret=args.curve_secret, insecure=args.insecure)
        rec = load_recognizer(args.model, args.device)
        from finetec_live.inference import recognizer as _recognizer_module

        min_frames = int(getattr(_recognizer_module, "MIN_FRAMES", 8))
        _limit_threads()
        window_s = args.window or float(rec.window_seconds)
        hop_s = args.hop or float(rec.hop_seconds)
        if hop_s > window_s:
            raise FinetecError(f"--hop {hop_s:g} is longer than the window ({window_s:g} s); "
                               "use a hop <= window")
        if window_s * source.fps < min_frames:
            raise FinetecError(f"--window {window_s:g} s holds fewer than the {min_frames} frames "
                               f"the model needs at {source.fps:g} fps; use --window "
                               f"{math.ceil(100 * min_frames / source.fps) / 100:g} or more")
        layout = rec.layout
        from finetec_live.skeleton.layouts import get_layout

        num_joints = get_layout(layout).num_joints
        windower = Windower(window_s, hop_s, 1.0 / source.fps)
        ring = RingBuffer(windower.capacity_for(), num_joints, 2, layout)
        dropper = None
        if args.drop > 0:
            from finetec_live.data.corruption import FrameDropper

            dropper = FrameDropper(args.drop, args.seed)
        if args.record:
            from finetec_live.live.recording import KeypointRecorder

            recorder = KeypointRecorder(args.record, source.fps, source.width, source.height,
                                        str(args.video or args.keypoints or args.camera))
        if args.jsonl:
            jsonl = _JsonlWriter(args.jsonl)
        handoff = Handoff(maxsize=1)
        worker = InferenceWorker(rec, handoff, publisher, stats, stream, stop, topk=args.topk,
                                 want_completion=display is not None, on_label=jsonl)
        spent = warm_up(rec, window_s, source.fps, want_completion=display is not None)
        log.debug("warm-up: %.2f s", spent)
        thread = threading.Thread(target=worker.run, name="finetec-inference", daemon=True)
        thread.start()
        # Live (not --fast): pose runs at a lower priority than inference, so a
        # due window preempts the next frame's pose instead of waiting behind it.
        # Set here, after the inference thread exists (it keeps its priority) and
        # before MediaPipe starts its threads (they inherit this one's).
        if not args.fast and CAPTURE_NICE:
            _lower_this_thread(CAPTURE_NICE)
        if args.keypoints is None:
            from finetec_live.live.pose import PoseEstimator

            if not log.isEnabledFor(logging.DEBUG):
                restore_stderr = _silence_native_stderr()
            estimator = PoseEstimator(model_complexity=1)
        log.info("publishing label.%s and status.%s on %s; model %s (%s, %d classes) on %s; "
                 "window %.2f s, hop %.2f s; source %.1f fps%s", stream, stream, args.bind,
                 rec.model_id, layout, len(rec.class_names), rec.device, window_s, hop_s,
                 source.fps, ", as fast as possible" if args.fast else "")

        def cut(lo: float, hi: float, force: bool = False) -> None:
            window = ring.window(lo, hi, t_start=lo + windower.tol, t_end=hi + windower.tol,
                                 seq=stats.windows, wall_ready=time.perf_counter())
            stats.windows += 1
            if not enough_valid(window, args.min_valid, min_frames=min_frames):
                stats.skipped_windows += 1
                log.debug("window %d skipped: %d of %d frames valid", window.seq,
                          window.num_valid, window.num_frames)
                return
            handoff.put(window, force=force or wait_for_inference)

        # a file replayed with --fast has no clock to keep: capture waits for
        # inference instead of dropping windows. Live sources never wait.
        wait_for_inference = args.fast and args.camera is None
        t_run = time.perf_counter()
        last_t = None
        fps_clock, fps_frames, fps_now = time.perf_counter(), 0, 0.0
        for frame in source:
            if stats.first_frame_wall is None:
                stats.first_frame_wall = frame.wall
            pose_ms = 0.0
            if frame.pose is not None:  # keypoint replay
                raw, has_picture = frame.pose, not frame.late
            elif frame.image is None:  # a tick without picture
                raw, has_picture = Pose.empty("mediapipe33", frame.index, frame.timestamp), False
            else:
                t0 = time.perf_counter()
                raw = estimator.estimate(frame.image, frame.index, frame.timestamp)
                pose_ms = (time.perf_counter() - t0) * 1e3
                has_picture = True
            if recorder is not None:
                recorder.write(raw, gap=not has_picture)
            pose = raw.to_layout(layout, args.min_visibility)
            if not has_picture:
                stats.no_image += 1
            elif not pose.valid:
                stats.pose_missing += 1
            if dropper is not None and not dropper.keep():
                pose = pose.missing_like()
                stats.drop_injected += 1
            ring.push(pose, wall=frame.wall, pose_ms=pose_ms)
            stats.frames += 1
            stats.last_frame_wall = time.perf_counter()
            last_t = pose.timestamp
            for lo, hi in windower.update(pose.timestamp):
                cut(lo, hi)
            if display is not None:
                fps_frames += 1
                if stats.last_frame_wall - fps_clock >= 1.0:
                    fps_now = fps_frames / (stats.last_frame_wall - fps_clock)
                    fps_clock, fps_frames = stats.last_frame_wall, 0
                _draw(display, frame, source, pose, worker.latest, fps_now)
                if display.closed_by_user:
                    stopped_by["why"] = "window closed"
                    break
            if stop.is_set() or worker.error is not None:
                break
            if args.max_seconds and time.perf_counter() - t_run >= args.max_seconds:
                stopped_by["why"] = "max_seconds"
                break
        if worker.error is None and last_t is not None and stopped_by["why"] in (
                "end", "max_seconds"):
            final = windower.flush(last_t)
            if final is not None:
                cut(*final, force=True)
        handoff.close()
        thread.join()
        thread = None
        if worker.error is not None:
            raise worker.error
        stats.dropped_windows = handoff.dropped
        s = stats.to_dict()
        log.info("%s: %d frames in %.1f s (%.1f fps), %d windows: %d published, %d dropped, "
                 "%d skipped; %d frames without pose", stopped_by["why"], s["frames"],
                 s["elapsed_s"], s["fps"], s["windows"], s["published"], s["dropped_windows"],
                 s["skipped_windows"], s["pose_missing"])
        if args.stats_json:
            s.update(stopped_by=stopped_by["why"], stream=stream, model=rec.model_id,
                     layout=layout, device=rec.device, window_s=window_s, hop_s=hop_s,
                     source_fps=source.fps, drop=args.drop, seed=args.seed)
            _write_stats(args.stats_json, s)
            stats_written = True
        return 0
    finally:
        if args.stats_json and not stats_written and stats.frames > 0:
            # a run cut short by an error (a lost camera): what was counted is kept
            err = sys.exc_info()[1]
            s = stats.to_dict()
            s.update(stopped_by="error", error=str(err) if err is not None else None)
            try:
                _write_stats(args.stats_json, s)
            except Exception:  # the original error is the one to report
                log.debug("writing stats after an error failed", exc_info=True)
        stop.set()
        if thread is not None:  # an error on the capture side: let the worker finish
            worker.handoff.close()
            thread.join(timeout=5)
        for part in (display, recorder, jsonl, estimator, source):
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing must not hide the real error
                    log.debug("closing %s failed", type(part).__name__, exc_info=True)
        if auth is not None:
            auth.stop()
        if publisher is not None:
            publisher.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if restore_stderr is not None:
            restore_stderr()


def _silence_native_stderr():
    """Send what native libraries (MediaPipe, TFLite, FFmpeg) print on file
    descriptor 2 to /dev/null for the rest of the run, while Python's stderr
    (our logging and error lines) keeps the real terminal. Returns the undo.
    ``--log-level DEBUG`` keeps everything."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None
    old_stderr = sys.stderr
    ours = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = ours
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream is old_stderr]
    for h in handlers:
        h.setStream(ours)

    def restore() -> None:
        ours.flush()
        os.dup2(saved, 2)
        sys.stderr = old_stderr
        for h in handlers:
            h.setStream(old_stderr)
        ours.close()

    return restore


def _lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value (Linux: per thread); best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as exc:  # other systems, or not permitted
        log.debug("cannot lower the capture thread's priority: %s", exc)


def _limit_threads() -> None:
    """Leave a core to pose estimation. A batch-1 window gains nothing from many
    threads, and loses a lot when they fight MediaPipe for the cores (measured
    on 2 cores: 8.6 ms with one thread, 49 ms with two), so at most two."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    n = max(1, min(2, (os.cpu_count() or 2) - 1))
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)


def _draw(display, frame, source, pose, latest, fps: float) -> None:
    completed = None
    caption = [f"{fps:.1f} fps"]
    if latest is not None:
        m = latest.message
        caption.insert(0, f"{m.label}  {m.score:.2f}  (missing {m.missing:.0%})")
        # the newest completed tick stands in for missing joints of the current
        # frame only while it is recent (windows describe the past)
        recent = pose.timestamp - m.t_end / 1e9 <= COMPLETION_DISPLAY_S
        if latest.completed_positions is not None and recent and not pose.joint_valid.all():
            completed = latest.completed_positions[-1]
    canvas = display.render(frame.image, source.width, source.height, pose, completed, caption)
    display(canvas)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "keygen":
            from finetec_live.cli.keygen import keygen_main

            return keygen_main(argv[1:])
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=args.log_level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run(args)
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except MemoryError:
        print("error: out of memory; use a smaller --window or close other programs",
              file=sys.stderr)
        return 1
    except Exception as exc:  # no traceback for users; --log-level DEBUG shows it
        log.debug("unexpected error", exc_info=True)
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: {type(exc).__name__}: {msg}; rerun with --log-level DEBUG and report "
              "the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
