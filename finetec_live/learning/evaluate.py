"""The evaluation driver: every recognizer under every protocol, with the same masks for all.

For each protocol of :data:`finetec_live.data.corruption.EVAL_PROTOCOLS` the corrupted
test windows are built once (:func:`finetec_live.learning.protocol.build_protocol`),
then given to every method: one forward pass per window gives both the class
probabilities and the completion (``Recognizer.predict(batch, with_completion=True)``),
mapped back to the caller's frames with
:func:`finetec_live.inference.recognizer.map_to_frames`, as ``Recognizer.complete`` does.
Checkpoints are named in the results by their file's SHA-256, their ``model_id`` and
the runs that made them (their ``stages``), never by where the file happened to lie.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetec_live.data.corruption import EVAL_PROTOCOLS
from finetec_live.errors import FinetecError
from finetec_live.inference.prepare import PreparedBatch
from finetec_live.inference.recognizer import map_to_frames
from finetec_live.learning.protocol import (
    DEFAULT_SEED,
    ProtocolInputs,
    accuracies,
    build_protocol,
    completion_error_sums,
    interpolation_error,
    load_test_clips,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256
DATASET_MODEL = {"penn": "penn", "jhmdb": "jhmdb"}
_BATCH_FIELDS = ("x", "mask", "interp", "dynamic", "kin", "frame_valid", "timestamps",
                 "centre", "scale")


# --------------------------------------------------------------------------- inference
def concat_batches(batches: Sequence[PreparedBatch]) -> PreparedBatch:
    """Prepared batches of one model stacked into one."""
    if len(batches) == 1:
        return batches[0]
    return PreparedBatch(**{n: np.concatenate([getattr(b, n) for b in batches])
                            for n in _BATCH_FIELDS})


def slice_batch(batch: PreparedBatch, lo: int, hi: int) -> PreparedBatch:
    """Windows ``lo:hi`` of a prepared batch."""
    return PreparedBatch(**{n: getattr(batch, n)[lo:hi] for n in _BATCH_FIELDS})


def forward_batch(rec, batch: PreparedBatch, batch_size: int = DEFAULT_BATCH):
    """``rec.predict(..., with_completion=True)`` in chunks of ``batch_size`` windows:
    ``(probs (N, K), completed (N, T_m, V, 2))``, the completion on the model's grid in
    the caller's units."""
    probs, comps = [], []
    for lo in range(0, len(batch), batch_size):
        p, c = rec.predict(slice_batch(batch, lo, lo + batch_size), with_completion=True)
        probs.append(p)
        comps.append(c)
    return np.concatenate(probs), np.concatenate(comps)


def _prepare_key(rec) -> tuple:
    cfg = rec.config
    # the kernels themselves, not just whether any run: a motion-only and a physics-only
    # model must not share one prepared batch
    return (rec.T, rec.layout, cfg.fill, cfg.needs_kernels, getattr(cfg, "interp", "linear"))


def prepared_batch(rec, inputs: ProtocolInputs, batch_size: int = DEFAULT_BATCH):
    """All the protocol's windows through ``rec.prepare``, group after group, in one batch.

    Cached per preprocessing kind: methods that share the model's T, layout,
    fill mode and kernels (every FineTec variant with kernels on) reuse it.
    Windows of every native length end up on the model's grid, so the network
    sees full batches whatever the clip lengths.
    """
    import torch

    key = _prepare_key(rec)
    if key not in inputs.prepared:
        # Numba's parallel kernels (OpenMP layer) reset the process's OpenMP thread count,
        # which torch shares: put torch's back afterwards.
        threads = torch.get_num_threads()
        chunks = []
        for g in inputs.groups:
            chunks += [rec.prepare(g.positions[lo:lo + batch_size],
                                   g.frame_valid[lo:lo + batch_size],
                                   g.joint_valid[lo:lo + batch_size],
                                   g.timestamps[lo:lo + batch_size])
                       for lo in range(0, len(g), batch_size)]
        inputs.prepared[key] = concat_batches(chunks)
        torch.set_num_threads(threads)
    return inputs.prepared[key]


def evaluate_method(rec, inputs: ProtocolInputs, num_classes: int,
                    batch_size: int = DEFAULT_BATCH) -> dict:
    """Accuracy and completion error of one recognizer on one protocol's windows:
    ``{"top1", "mean_class", "completion_error", "missing_joints"}``."""
    batch = prepared_batch(rec, inputs, batch_size)
    probs, comp = forward_batch(rec, batch, batch_size)
    probs_all = np.zeros((inputs.num_samples, probs.shape[1]), dtype=np.float32)
    total, count, lo = 0.0, 0, 0
    for g in inputs.groups:
        hi = lo + len(g)
        probs_all[g.index] = probs[lo:hi]
        observed = g.frame_valid[..., None] & g.joint_valid
        done = map_to_frames(comp[lo:hi], batch.timestamps[lo:hi], g.timestamps,
                             g.positions, observed)
        s, c = completion_error_sums(done, g.truth, g.missing, g.scale)
        total, count, lo = total + s, count + c, hi
    top1, mean_class = accuracies(probs_all, inputs.labels, num_classes)
    return {"top1": top1, "mean_class": mean_class,
            "completion_error": total / count if count else None,
            "missing_joints": count}


# --------------------------------------------------------------------------- driver
def default_checkpoints(dataset: str, runs: Path | None = None) -> list[tuple[str, str]]:
    """The shipped model for ``dataset``, plus every ``runs/*.pt`` with the dataset's layout
    when a ``runs`` folder is given."""
    import torch

    if dataset not in DATASET_MODEL:
        raise FinetecError(f"no shipped model for {dataset!r}; pass --checkpoint NAME=PATH")
    out = [(f"finetec (shipped {DATASET_MODEL[dataset]}.pt)", DATASET_MODEL[dataset])]
    if runs is None:
        return out
    if not runs.is_dir():
        raise FinetecError(f"--runs {runs} is not a folder; pass the folder of checkpoints")
    layout = load_test_clips(dataset, limit=1)[2]
    for p in sorted(runs.glob("*.pt")):
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # a checkpoint being written, or not ours
            log.warning("skipping %s (%s)", p, type(e).__name__)
            continue
        if isinstance(ck, dict) and ck.get("layout") == layout:
            out.append((p.stem, str(p)))
    return out


def describe_method(rec, path: str | None) -> dict:
    """How a method is named in the results: the checkpoint file's SHA-256 (``None`` for a
    model built in memory), its ``model_id``, the shipped file's name if it is one, the
    runs that made it (``stages``) and the main switches of its configuration."""
    from finetec_live.inference.checkpoint import checkpoint_stages, file_sha256, shipped_name

    cfg = rec.config.to_dict()
    return {
        "sha256": file_sha256(path) if path is not None else None,
        "model_id": rec.model_id,
        "shipped": shipped_name(path) if path is not None else None,
        "method": rec.method, "uses_completion": rec.uses_completion,
        "config": {k: v for k, v in cfg.items()
                   if k in ("method", "completion", "decomposition", "physics", "channels",
                            "completion_bank")},
        "stages": checkpoint_stages(rec.checkpoint_meta),
        "results": {},
    }


def _load_recognizers(checkpoints, recognizers, device: str) -> tuple[dict, dict]:
    from finetec_live.inference.recognizer import Recognizer

    recs, paths = dict(recognizers or {}), {}
    for name, path in checkpoints:
        recs[name] = Recognizer.from_checkpoint(path, device=device)
        paths[name] = path
    if not recs:
        raise FinetecError("no model to evaluate; pass --checkpoint NAME=PATH")
    return recs, paths


def _check_compatible(recs: dict, dataset: str, layout: str, class_names: list) -> int:
    for name, r in recs.items():
        if r.layout != layout:
            raise FinetecError(f"model {name} uses layout {r.layout} but {dataset} clips are "
                               f"{layout}; evaluate it on its own data set")
        if list(r.class_names) != class_names:
            raise FinetecError(f"model {name} was trained on other classes than {dataset}'s "
                               "test split; evaluate it on its own data set")
    Ts = {r.T for r in recs.values()}
    if len(Ts) != 1:
        raise FinetecError(f"models with different window lengths {sorted(Ts)}; evaluate them "
                           "separately")
    return Ts.pop()


def run_evaluation(checkpoints: Sequence[tuple[str, str]], dataset: str = "penn",
                   protocols: Sequence[str] = EVAL_PROTOCOLS, seed: int = DEFAULT_SEED,
                   limit: int | None = None, batch_size: int = DEFAULT_BATCH,
                   data_root: str | None = None, device: str = "cpu",
                   progress: bool = True, recognizers: dict | None = None,
                   clips: Sequence | None = None, joints: str = "visibility") -> dict:
    """Evaluate every checkpoint under every protocol; returns the results dict (JSON-ready).

    ``recognizers`` maps names to already built recognizers (evaluated with
    the ``checkpoints``); ``clips`` replaces the test split (e.g. a subset).
    """
    import sys

    from tqdm import tqdm

    test, class_names, layout = load_test_clips(dataset, data_root, limit, joints)
    clips = list(test if clips is None else clips)
    recs, paths = _load_recognizers(checkpoints, recognizers, device)
    T = _check_compatible(recs, dataset, layout, class_names)
    results: dict = {
        "dataset": dataset, "joints": joints, "num_test_clips": len(clips), "seed": seed,
        "T": T,
        "protocols": list(protocols), "class_names": class_names,
        "methods": {name: describe_method(r, paths.get(name)) for name, r in recs.items()},
        "interpolation": {}, "mask_digests": {}, "missing_fraction": {}, "seconds": {},
        "primary": next(iter(recs)),
    }
    bar = tqdm(total=len(protocols) * len(recs), disable=not progress, desc=dataset,
               unit="run", file=sys.stderr)
    for spec in protocols:
        t0 = time.perf_counter()
        inputs = build_protocol(clips, spec, T, layout, seed)
        err, cnt = interpolation_error(inputs, layout)
        results["interpolation"][inputs.spec] = {"completion_error": err if cnt else None,
                                                 "missing_joints": cnt}
        results["mask_digests"][inputs.spec] = inputs.mask_digest
        results["missing_fraction"][inputs.spec] = inputs.missing_fraction
        for name, r in recs.items():
            bar.set_postfix_str(f"{inputs.spec} {name}"[:60])
            res = evaluate_method(r, inputs, len(class_names), batch_size)
            ok = res["completion_error"] is not None and cnt
            res["completion_ratio"] = res["completion_error"] / err if ok else None
            results["methods"][name]["results"][inputs.spec] = res
            bar.update(1)
        results["seconds"][inputs.spec] = time.perf_counter() - t0
        log.info("%s done in %.1f s", inputs.spec, results["seconds"][inputs.spec])
    bar.close()
    return results
