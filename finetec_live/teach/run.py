"""One teaching run, :func:`teach`: a user's clips in, a checkpoint ``finetec-live --model``
runs as it is, and its report, out.

1. The clips are collected (:mod:`~finetec_live.teach.collect`: class folders of videos
   or recordings, poses estimated and cached; or a PYSKL file), and every class checked
   to have enough of them.
2. The live window is picked from the clips' durations (their median, within
   :data:`WINDOW_RANGE`), the hop a fifth of it.
3. Whole clips (videos) are held out for validation, stratified by class
   (:func:`~finetec_live.learning.windows.split_train_val`); the rest are cut into
   chunks so that long videos count by their length.
4. The student (:mod:`~finetec_live.teach.fit`) is fine-tuned from the base weights, with
   outlier exposure to the clips of other actions (:mod:`~finetec_live.teach.others`),
   calibrated (5.) and scored on the validation clips for the report; then (``refit``,
   the default) the same recipe makes the checkpoint from every clip, validation ones
   included, its floor set to reject the share of other actions the validated floor
   rejected.
5. The open-set decision is calibrated for the new classes: ``idle`` from the
   region-motion kernel (:func:`~finetec_live.learning.openset.calibrate`), ``unknown``
   from the similarity of a window's features to the class prototypes (the mean
   directions of the training windows), its floor set on the held-out clips of other
   actions and kept from rejecting more than :data:`MAX_INLIER_REJECTION` of the moving
   validation windows (see :func:`_calibrate`).
6. The checkpoint (base layout, the new classes, window, hop, thresholds, the run's
   record) and the report (:mod:`~finetec_live.teach.report`) are written.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.teach.collect import LAYOUT, TeachData
from finetec_live.teach.fit import FitOptions

log = logging.getLogger(__name__)

WINDOW_RANGE = (1.0, 2.5)  # seconds: the live window lies in this range
VAL_FRACTION = 0.2
MIN_CLIPS = 2  # per class: one to train on, one to validate
# the unknown similarity floor rejects this share of the held-out windows of other
# actions ...
OUTLIER_REJECTION = 0.90
# ... unless that rejects more than this share of the moving validation windows
MAX_INLIER_REJECTION = 0.10
OTHER_DATASETS = ("penn", "jhmdb")
REJECTION_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass
class TeachOptions:
    """What :func:`teach` is asked to do (one field per ``finetec-train`` option)."""

    source: Path
    out: Path
    base: str = "penn"
    class_names: Path | None = None
    val_fraction: float = VAL_FRACTION
    min_clips: int = MIN_CLIPS
    other_videos: tuple[str, ...] = ()
    other_datasets: tuple[str, ...] = OTHER_DATASETS
    data_root: str | None = None
    pose_cache: Path | None = None
    jobs: int = 2
    device: str = "auto"
    threads: int = 0
    window_seconds: float | None = None
    outlier_rejection: float = OUTLIER_REJECTION
    refit: bool = True  # after validating, train the checkpoint on every clip
    fit: FitOptions = field(default_factory=FitOptions)
    progress: bool = True

    def __post_init__(self) -> None:
        self.source, self.out = Path(self.source), Path(self.out)
        if not 0.0 <= self.val_fraction < 1.0:
            raise FinetecError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.window_seconds is not None and not (
                WINDOW_RANGE[0] / 2 <= self.window_seconds <= 10.0):
            raise FinetecError(f"--window {self.window_seconds} s is outside 0.5-10 s")
        if not 0.0 < self.outlier_rejection < 1.0:
            raise FinetecError(f"--outlier-rejection must be a share in (0, 1), got "
                               f"{self.outlier_rejection}")
        if self.threads < 0:
            raise FinetecError(f"--threads must be 0 (all cores) or more, got {self.threads}")
        if self.fit.steps < 1 or self.fit.batch_size < 2:
            raise FinetecError("--steps must be at least 1 and --batch-size at least 2")


def check_output(out: Path) -> None:
    """Fail now, not after the training, when ``out`` cannot be written."""
    if out.is_dir():
        raise FinetecError(f"--out {out} is a folder; name a file such as {out / 'mine.pt'}")
    if not out.parent.is_dir():
        raise FinetecError(f"--out {out}: folder {out.parent} does not exist; create it or "
                           "write elsewhere")
    probe = out.with_name(f".{out.name}.probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FinetecError(f"cannot write --out {out} ({exc.strerror}); choose a writable "
                           "path") from None


def live_window(data: TeachData, forced: float | None) -> tuple[float, float]:
    """``(window, hop)`` seconds: the median clip duration within :data:`WINDOW_RANGE`
    (or ``forced``), to a tenth of a second; the hop a fifth of it (at least 0.2 s)."""
    from finetec_live.teach.collect import durations

    w = forced if forced is not None else float(np.clip(np.median(durations(data.clips)),
                                                        *WINDOW_RANGE))
    w = round(w, 1)
    return w, max(0.2, round(w / 5, 1))


def _collect(opts: TeachOptions) -> TeachData:
    from finetec_live.teach import collect

    if opts.source.suffix.lower() == ".pkl":
        names = collect.read_class_names(opts.class_names) if opts.class_names else None
        return collect.collect_pyskl(opts.source, names)
    if opts.class_names is not None:
        raise FinetecError("--class-names applies to a PYSKL file; a folder's classes are its "
                           "sub-folders' names")
    return collect.collect_folder(opts.source, opts.pose_cache, opts.jobs, opts.progress)


def _other_videos(opts: TeachOptions) -> list:
    from finetec_live.teach.collect import collect_unlabelled

    clips = []
    for root in opts.other_videos:
        clips += collect_unlabelled(root, opts.pose_cache, opts.jobs, opts.progress)
    return clips


def _samplers(opts: TeachOptions, cfg, train, others, window: float):
    from finetec_live.learning.windows import Sampler
    from finetec_live.teach.collect import chunk

    f = opts.fit
    kw = dict(crop_prob=f.crop_prob, crop_seconds=(0.6 * window, 1.4 * window),
              mask_prob=f.mask_prob, native_prob=f.native_prob, tempo_prob=f.tempo_prob,
              estimator_prob=f.estimator_prob)
    chunks = chunk(train, 2.0 * window, 0.5 * window)
    sampler = Sampler(chunks, LAYOUT, cfg.T, np.random.default_rng(f.seed), **kw)
    kw["estimator_prob"] = f.outlier_estimator_prob
    outliers = (Sampler(chunk(others, 2.0 * window, window), LAYOUT, cfg.T,
                        np.random.default_rng([f.seed, 1]), **kw) if others else None)
    return sampler, outliers


def _calibrate(rec, opts: TeachOptions, val, train, held, window: float, hop: float):
    """The open-set thresholds and prototypes; ``(open_set, validation windows)``.

    ``idle`` as :func:`~finetec_live.learning.openset.calibrate` sets it; ``unknown`` by
    the similarity to the class prototypes
    (:func:`~finetec_live.learning.openset.with_prototypes`): the floor rejects
    ``opts.outlier_rejection`` of the held-out windows of other actions, lowered to keep
    ``1 - MAX_INLIER_REJECTION`` of the moving validation windows.
    """
    from finetec_live.learning import openset as O

    taught = O.clip_windows(train, rec.T, window, hop, whole=False)
    inliers = O.clip_windows(val, rec.T, window, hop, whole=False) if val else None
    still = O.still_windows(train, 400, rec.T, np.random.default_rng(opts.fit.seed), window,
                            layout=LAYOUT)
    outliers = O.clip_windows(held, rec.T, window, hop, outlier=True) if held else None
    own = inliers if inliers is not None else taught
    rule = O.calibrate(rec, own, outliers if outliers is not None else own, still,
                       outlier_rejection=opts.outlier_rejection if held else 0,
                       hold=None)  # the prototype rule decides; the hold is the other rule's
    rule = O.with_prototypes(rec, rule, taught, outliers, inliers, opts.outlier_rejection,
                             MAX_INLIER_REJECTION, REJECTION_GRID)
    return rule, own


def _student(base, data: TeachData, opts: TeachOptions, train, val, other_train, other_held,
             window: float, hop: float, device: str):
    """One student fitted on ``train`` and calibrated: ``(recognizer, open_set, windows the
    rule was checked on, history, training chunks)``."""
    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.teach import fit

    model, cfg = fit.student(base, data.class_names)
    model.to(device)
    sampler, outliers = _samplers(opts, cfg, train, other_train, window)
    if not sampler.clips:
        raise FinetecError("no training clip is left; see the skipped inputs")
    n = min(len(sampler.clips), 512)
    pick = np.random.default_rng([opts.fit.seed, 3]).permutation(len(sampler.clips))[:n]
    labels = np.array([sampler.clips[i].label for i in pick])
    if len(np.unique(labels)) == len(data.class_names):
        feats = fit.features(model, cfg, LAYOUT, sampler, pick, device)
        fit.imprint(model, feats, labels, base["state_dict"]["backbone.fc.weight"])
    history = fit.fit(model, cfg, LAYOUT, sampler, outliers, opts.fit, device, opts.progress)
    rec = Recognizer(model, cfg, LAYOUT, data.class_names, device=device,
                     window_seconds=window, hop_seconds=hop, model_id="in-training")
    rule, windows = _calibrate(rec, opts, val, train, other_held, window, hop)
    rec.open_set, rec.open_set_enabled = rule, True
    return rec, rule, windows, history, len(sampler.clips)


def _checkpoint(base: dict, model, cfg, data: TeachData, opts: TeachOptions, window, hop,
                rule, record, extra) -> dict:
    from finetec_live.learning.checkpoints import with_stage

    ck = {k: v for k, v in base.items() if k not in ("optimizer", "history", "open_set",
                                                     "refine_history", "validation")}
    ck.update(state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
              config=cfg.to_dict(), class_names=list(data.class_names),
              dataset=opts.out.stem, window_seconds=float(window), hop_seconds=float(hop),
              open_set=rule.to_dict(), stages=with_stage(base, record),
              command=record["command"], teach=extra)
    return ck


def teach(opts: TeachOptions, command: str = "finetec-train") -> dict:
    """Run the steps of the module docstring; returns the report (a dict, also written
    next to ``opts.out``)."""
    import torch

    from finetec_live.inference.checkpoint import hash_state, load_checkpoint, resolve_device
    from finetec_live.learning.checkpoints import atomic_save, stage_record
    from finetec_live.learning.windows import split_train_val
    from finetec_live.teach import collect, others, report

    t0 = time.time()
    check_output(opts.out)
    device = resolve_device(opts.device)
    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    base = load_checkpoint(opts.base)
    if base["layout"] != LAYOUT:
        raise FinetecError(f"--base {opts.base} is for layout {base['layout']}; teaching starts "
                           f"from a {LAYOUT} checkpoint such as the shipped penn")
    data = _collect(opts)
    t_poses = time.time() - t0
    collect.check_classes(data, opts.min_clips)
    window, hop = live_window(data, opts.window_seconds)
    train, val = (split_train_val(data.clips, opts.val_fraction) if opts.val_fraction
                  else (list(data.clips), []))
    log.info("%d classes, %d training and %d validation clips; live window %.1f s every "
             "%.1f s", len(data.class_names), len(train), len(val), window, hop)
    other_train, other_held, other_summary = others.other_actions(
        data.class_names, LAYOUT, opts.other_datasets, opts.data_root, _other_videos(opts))
    t1 = time.time()
    rec, rule, windows, history, chunks = _student(base, data, opts, train, val, other_train,
                                                   other_held, window, hop, device)
    decisions = [d.label for s in range(0, len(windows) if val else 0, 256)
                 for d in rec.decisions(windows.positions[s:s + 256],
                                        windows.frame_valid[s:s + 256],
                                        windows.joint_valid[s:s + 256],
                                        windows.timestamps[s:s + 256])]
    validated = rec
    if val and opts.refit:  # the checkpoint: the same recipe on every clip
        log.info("validated; now the same recipe on all %d clips", len(data.clips))
        # the refit rejects the share of other actions the validated (maybe lowered) floor did
        rate = rule.calibration.get("outlier_unknown_rate")
        refit_opts = replace(opts, outlier_rejection=float(np.clip(rate, 0.05, 0.99))) \
            if rate else opts
        rec, rule, _, history, chunks = _student(base, data, refit_opts, list(data.clips), [],
                                                 other_train, other_held, window, hop, device)
    model, cfg = rec.model, rec.config
    t_fit = time.time() - t1
    record = stage_record(command, t_fit, f"taught {len(data.class_names)} classes from "
                          f"{opts.source} on the weights of {opts.base}",
                          {**{k: str(v) if isinstance(v, Path) else v
                              for k, v in asdict(opts).items() if k != "fit"},
                           "fit": asdict(opts.fit)})
    state_id = hash_state({k: v.detach().cpu() for k, v in model.state_dict().items()})[:8]
    rep = {"model_id": f"{opts.out.stem}-{cfg.method}-{state_id}", "source": str(opts.source),
           "kind": data.kind, "class_names": list(data.class_names),
           "clips": {"train": len(train), "validation": len(val),
                     "checkpoint_trained_on": len(data.clips) if rec is not validated
                     else len(train), "per_class": data.counts(), "train_chunks": chunks},
           "window_seconds": window, "hop_seconds": hop, "steps": opts.fit.steps,
           "device": device, "history": history, "other_actions": other_summary,
           "open_set": {k: v for k, v in rule.to_dict().items() if k != "prototypes"},
           "skipped": [asdict(s) for s in data.skipped],
           "validation": (report.validation_table(data.class_names, windows.labels,
                                                  decisions, windows.source) if val else None)}
    ck = _checkpoint(base, model, cfg, data, opts, window, hop, rule, record,
                     {k: rep[k] for k in ("clips", "validation", "other_actions", "skipped")})
    atomic_save(ck, opts.out)
    rep["seconds"] = {"poses": round(t_poses, 1), "fit": round(t_fit, 1),
                      "total": round(time.time() - t0, 1)}
    rep["checkpoint"] = str(opts.out)
    rep["files"] = {k: str(v) for k, v in report.write_report(
        opts.out, rep, data.class_names, windows.labels if val else None,
        decisions if val else None).items()}
    return rep
