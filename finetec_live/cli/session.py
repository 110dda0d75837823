"""One live session of ``finetec-live``: :class:`LiveRun` and its stages.

A source (a camera read on a capture thread of its own, so capture never waits on
pose), the pose estimator, the people of the stream (one timeline each: gap filling,
ring buffer, windower), the recognizer on an inference thread fed through a hand-off
that drops stale windows, and the publisher; or, in edge mode (``--serve``), a sender
of window messages instead of the recognizer and the publisher.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from finetec_live.cli import checks, parts, runtime
from finetec_live.cli.outputs import (
    JsonlWriter,
    stats_payload,
    summary_line,
    timeline,
    write_error,
    write_stats,
)
from finetec_live.errors import FinetecError

log = logging.getLogger("finetec_live")
WORKER_JOIN_S = 30.0  # longest wait for the inference thread to finish its window


class LiveRun:
    """The parts of one live session, opened by :meth:`open`, run by :meth:`capture`,
    ended by :meth:`finish`, and always released by :meth:`close`."""

    def __init__(self, args: argparse.Namespace) -> None:
        from finetec_live.live.pose import Pose
        from finetec_live.live.stats import Stats
        from finetec_live.live.worker import enough_valid

        self.args = args
        self.stop = threading.Event()
        self.signals = runtime.StopOnSignal(self.stop)
        self.stats = Stats()
        self.stats_written = False
        self.source = self.publisher = self.rec = self.people = None
        self.estimator = self.recorder = self.display = self.jsonl = self.dropper = None
        self.handoff = self.worker = self.worker_thread = None
        self.pump = self.pump_thread = self.native_log = self.progress = None
        self.sender = None  # edge mode (--serve): windows to a finetec-serve
        self.window_s = self.hop_s = 0.0
        self.stream = ""
        self._fps = (time.perf_counter(), 0, 0.0)  # clock, frames, fps of the display caption
        self._empty, self._enough_valid = Pose.empty, enough_valid  # per-tick steps

    # ------------------------------------------------------------------ opening
    def open(self) -> None:
        """Source, outputs, publisher, model, timeline, worker: everything but pose."""
        from finetec_live.wire.messages import check_stream_name

        args = self.args
        self.signals.install()
        self.source = parts.open_source(args, self.stop)
        self.stream = args.stream or self.source.name
        try:
            check_stream_name(self.stream)
        except ValueError as exc:
            raise FinetecError(f"{exc}; pass --stream with such a name") from None
        self._open_display()
        if args.serve:  # edge mode: no model, no publisher here
            from finetec_live.cli.edge import EdgeModel, EdgeSender

            self.rec, self.sender = EdgeModel(), EdgeSender(args.serve, self.stream)
        else:
            self._open_publisher()
            self.rec = parts.load_recognizer(args.model, args.device)
            parts.configure_open_set(self.rec, args.open_set)
            runtime.limit_torch_threads()
            parts.use_backend(self.rec, args.backend, args.onnx)
        self._open_people()
        if args.drop > 0:
            from finetec_live.data.corruption import FrameDropper

            self.dropper = FrameDropper(args.drop, args.seed)
        if args.record:
            from finetec_live.live.recording import KeypointRecorder

            self.recorder = KeypointRecorder(args.record, self.source.fps, self.source.width,
                                             self.source.height,
                                             str(args.video or args.keypoints or args.camera))
        if args.jsonl:
            self.jsonl = JsonlWriter(args.jsonl)
        if self.sender is None:
            self._start_worker()
        else:
            self.handoff = self.sender  # windows go to the server

    def _open_display(self) -> None:
        args = self.args
        show = args.show and not args.no_display
        if show or args.output:
            if show:
                checks.check_display()
            from finetec_live.live.display import Display

            self.display = Display(show, args.output, self.source.fps,
                                   title=f"finetec-live {self.stream}")

    def _open_publisher(self) -> None:
        from finetec_live.wire.publisher import open_publisher

        args = self.args
        self.publisher = open_publisher(args.bind, curve_secret=args.curve_secret,
                                        curve_clients=args.curve_clients,
                                        any_client=args.curve_any_client, insecure=args.insecure)

    def _open_people(self) -> None:
        from finetec_live.inference.prepare import MIN_FRAMES
        from finetec_live.live.people import People

        fps = self.source.fps
        self.window_s = self.args.window or float(self.rec.window_seconds)
        self.hop_s = self.args.hop or float(self.rec.hop_seconds)
        checks.check_window(self.window_s, self.hop_s, fps, MIN_FRAMES)
        self.min_frames = MIN_FRAMES
        self.people = People(self.rec.layout, self.window_s, self.hop_s, 1.0 / fps,
                             max_people=self.args.max_people, timeout_s=self.args.track_timeout)

    def _start_worker(self) -> None:
        from functools import partial

        from finetec_live.inference.smoothing import Smoother
        from finetec_live.live.handoff import Handoff
        from finetec_live.live.segments import Segmenter
        from finetec_live.live.worker import InferenceWorker, warm_up

        want = self.display is not None
        self.handoff = Handoff(maxsize=1)
        self.worker = InferenceWorker(self.rec, self.handoff, self.publisher, self.stats,
                                      self.stream, self.stop, topk=self.args.topk,
                                      want_completion=want, on_label=self.jsonl,
                                      segmenter=partial(Segmenter, gap=self.hop_s),
                                      smoother=Smoother(self.args.smooth, self.hop_s))
        log.debug("warm-up: %.2f s", warm_up(self.rec, self.window_s, self.source.fps,
                                              want_completion=want))
        self.worker_thread = threading.Thread(target=self.worker.run, name="finetec-inference",
                                              daemon=True)
        self.worker_thread.start()

    def open_capture(self) -> None:
        """Pose estimation and, for a camera, the capture thread; the opening log line."""
        args = self.args
        # Live (not --fast): pose runs at a lower priority than inference, so a
        # due window preempts the next frame's pose instead of waiting behind it.
        # Set after the inference thread exists (it keeps its priority) and
        # before MediaPipe starts its threads (they inherit this one's).
        nice = runtime.capture_nice()
        if not args.fast and nice:
            runtime.lower_this_thread(nice)
        if not log.isEnabledFor(logging.DEBUG):
            from finetec_live.live.native import NativeLog

            self.native_log = NativeLog().start()
        if args.keypoints is None and args.max_people > 1:
            from finetec_live.live.multipose import MultiPoseEstimator

            self.estimator = MultiPoseEstimator(args.max_people)
        elif args.keypoints is None:
            from finetec_live.live.pose import PoseEstimator

            self.estimator = PoseEstimator(model_complexity=1)
        if args.camera is not None:
            from finetec_live.live.capture import FramePump

            self.pump = FramePump(self.source)
            self.pump_thread = threading.Thread(target=self.pump.run, name="finetec-capture",
                                                daemon=True)
            self.pump_thread.start()
        rec = self.rec
        if self.sender is not None:
            log.info("sending the windows of %s (%s, window %.2f s, hop %.2f s) to finetec-serve "
                     "at %s; source %.1f fps", self.stream, rec.layout, self.window_s,
                     self.hop_s, self.sender.endpoint, self.source.fps)
            return
        parts.warn_closed_set(rec, args.open_set, args.model)
        log.info("publishing label.%s, segment.%s and status.%s on %s; model %s (%s, %d "
                 "classes, %s) on %s; window %.2f s, hop %.2f s, %s; source %.1f fps%s%s",
                 self.stream, self.stream, self.stream, self.publisher.endpoint, rec.model_id,
                 rec.layout, len(rec.class_names),
                 "open set" if rec.open_set_enabled else "closed set", rec.device,
                 self.window_s, self.hop_s,
                 f"labels from the last {args.smooth} windows" if args.smooth > 1
                 else "labels from each window alone", self.source.fps,
                 ", as fast as possible" if args.fast else "",
                 f"; up to {args.max_people} people" if args.max_people > 1 else "")
        show = args.progress if args.progress is not None else sys.stderr.isatty()
        if show and args.camera is None:  # a file's replay, never a camera
            from finetec_live.cli.progress import ReplayProgress, source_seconds

            self.progress = ReplayProgress(self.stream, source_seconds(self.source, args.loop),
                                           1.0 / self.source.fps)

    # ------------------------------------------------------------------ running
    def capture(self) -> None:
        """The capture loop: one frame tick at a time until the source ends or a stop."""
        frames = self.pump if self.pump is not None else self.source
        t_run = time.perf_counter()
        for frame in frames:
            if self.stats.first_frame_wall is None:
                self.stats.first_frame_wall = frame.wall
            self.step(frame)
            if self.progress is not None:
                self.progress.update(frame.timestamp, self.worker)
            if self.display is not None and self.display.closed_by_user:
                self.signals.why = "window closed"
                break
            if self.stop.is_set() or (self.worker is not None and self.worker.error is not None):
                break
            if self.args.max_seconds and time.perf_counter() - t_run >= self.args.max_seconds:
                self.signals.why = "max_seconds"
                break

    def _estimate(self, frame):
        """The tick's raw (mediapipe33) poses, whether it had a picture, pose time (ms)."""
        if frame.pose is not None:  # keypoint replay
            raws = [p for p in (frame.pose, *frame.more) if p.valid]
            return raws, not frame.late, 0.0
        if frame.image is None:  # a tick without picture
            return [], False, 0.0
        t0 = time.perf_counter()
        got = self.estimator.estimate(frame.image, frame.index, frame.timestamp)
        pose_ms = (time.perf_counter() - t0) * 1e3
        raws = got if isinstance(got, list) else [got] if got.valid else []
        return raws, True, pose_ms

    def step(self, frame) -> None:
        """Pose (or the recorded poses), record, map, count, track, push; cut due windows;
        draw."""
        args, stats = self.args, self.stats
        raws, has_picture, pose_ms = self._estimate(frame)
        if self.recorder is not None:
            first = raws[0] if raws else self._empty("mediapipe33", frame.index,
                                                     frame.timestamp)
            try:
                self.recorder.write(first, gap=not has_picture, more=raws[1:])
            except OSError as exc:
                raise write_error("--record", args.record, exc) from None
        poses = [p for p in (r.to_layout(self.rec.layout, args.min_visibility) for r in raws)
                 if p.valid][: args.max_people]
        stats.lagged += frame.late and frame.pose is None  # a replay's gaps were recorded
        if not has_picture:
            stats.no_image += 1
        elif not poses:
            stats.pose_missing += 1
        if self.dropper is not None and not self.dropper.keep():
            poses = []
            stats.drop_injected += 1
        people = self.people
        gaps_before, empty_before = people.gap_ticks, people.skipped_empty
        due = people.push(poses, frame.index, frame.timestamp, wall=frame.wall, pose_ms=pose_ms,
                          observed=has_picture)
        if due:
            self.submit(due)
        stats.empty_windows += people.skipped_empty - empty_before  # wholly in a long gap
        new_gaps = people.gap_ticks - gaps_before
        stats.gap_ticks += new_gaps
        stats.no_image += new_gaps
        stats.frames += 1 + new_gaps
        stats.people, stats.tracks_started = people.in_view, people.started
        stats.tracks_ended = people.ended
        stats.last_frame_wall = time.perf_counter()
        if self.display is not None and (frame.image is not None or frame.pose is not None):
            if not frame.late:  # a written video holds only real pictures
                self._draw(frame)

    def submit(self, windows, force: bool = False) -> None:
        """Hand the due windows (one hop's, of every person) to inference in one batch; a
        window with too few posed frames is counted as skipped."""
        keep = []
        for window in windows:
            self.stats.windows += 1
            ok = self._enough_valid(window, self.args.min_valid, min_frames=self.min_frames)
            self.people.counted(window, skipped=not ok)
            if ok:
                keep.append(window)
                continue
            self.stats.skipped_windows += 1
            log.debug("window %d of person %d skipped: %d of %d frames valid", window.seq,
                      window.person, window.num_valid, window.num_frames)
        if not keep:
            return
        # a file replayed with --fast has no clock to keep: capture waits for
        # inference instead of dropping windows. Live sources never wait.
        wait = self.args.fast and self.args.camera is None
        self.handoff.put(keep, force=force or wait)

    def _draw(self, frame) -> None:
        clock, n, fps = self._fps
        now = time.perf_counter()
        n += 1
        if now - clock >= 1.0:
            clock, n, fps = now, 0, n / (now - clock)
        self._fps = (clock, n, fps)
        self.display.draw_tick(frame.image, self.source.width, self.source.height,
                               self.people.current,
                               self.worker.latest if self.worker is not None else {},
                               frame.timestamp, fps,
                               several=self.args.max_people > 1)

    # ------------------------------------------------------------------ ending
    def finish(self) -> None:
        """Last window, drain inference, the progress line's last state, the end line, a
        file's timeline and the statistics."""
        worker = self.worker  # None in edge mode
        if (worker is None or worker.error is None) and self.signals.why in ("end",
                                                                               "max_seconds"):
            final = self.people.flush()
            if final:
                self.submit(final, force=True)
        self.handoff.close()
        if worker is not None:
            self.worker_thread.join()
            self.worker_thread = None
        if self.progress is not None:  # before the end line, not across it
            self.progress.close(worker)
            self.progress = None
        if worker is not None and worker.error is not None:
            raise worker.error
        if self.sender is not None:
            self.stats.published = self.sender.sent  # sent to the server
        self.stats.dropped_windows = self.handoff.dropped
        self._close_files()
        self._report_source()
        s = self.stats.to_dict()
        if self.sender is not None:
            s["serve"] = self.sender.endpoint
        log.info("%s", summary_line(self.signals.why, s))
        if self.args.camera is None and worker is not None:  # the end of a file
            log.info("%s", timeline(worker, self.stream))
        if self.args.stats_json:
            write_stats(self.args.stats_json, stats_payload(s, self))
            self.stats_written = True

    def _close_files(self) -> None:
        """Close what was written, so a failing last write is an error, not lost."""
        for part, option, path in ((self.recorder, "--record", self.args.record),
                                   (self.jsonl, "--jsonl", self.args.jsonl)):
            if part is not None:
                try:
                    part.close()
                except OSError as exc:
                    raise write_error(option, path, exc) from None

    def _report_source(self) -> None:
        self.stats.bad_ticks = int(getattr(self.source, "bad_ticks", 0) or 0)
        self.stats.gap_seconds = self.people.gap_seconds

    def write_stats_after_error(self, err: BaseException | None) -> None:
        """A run cut short by an error (a lost camera) keeps what was counted."""
        if not self.args.stats_json or self.stats_written or self.stats.frames == 0:
            return
        s = stats_payload(self.stats.to_dict(), self)
        s.update(stopped_by="error", error=str(err) if err is not None else None)
        try:
            write_stats(self.args.stats_json, s)
        except Exception:  # the original error is the one to report
            log.debug("writing stats after an error failed", exc_info=True)

    def close(self, unexpected: bool = False) -> None:
        """Release everything, the publisher last: the inference thread may still send."""
        self.stop.set()
        if self.pump is not None:  # the capture thread reads the camera: end it first
            self.pump.stop()
            self.pump_thread.join(timeout=WORKER_JOIN_S)
            if self.pump_thread.is_alive():
                log.warning("the capture thread did not end; the camera is left open")
                self.source = None
        if self.worker_thread is not None:  # an error on the capture side
            self.handoff.close()
            self.worker_thread.join(timeout=WORKER_JOIN_S)
        for part in (self.progress, self.display, self.recorder, self.jsonl, self.estimator,
                     self.source):
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing must not hide the real error
                    log.debug("closing %s failed", type(part).__name__, exc_info=True)
        worker_done = self.worker_thread is None or not self.worker_thread.is_alive()
        if self.publisher is not None and worker_done:
            self.publisher.close()
        self.signals.restore()
        if self.native_log is not None:
            kept = self.native_log.stop(keep=unexpected)
            if kept is not None:
                log.error("messages of the native libraries are in %s", kept)
