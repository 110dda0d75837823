#!/usr/bin/env python
"""Evaluate recognizers under every temporal-corruption protocol, with the same masks for all.

    python tools/evaluate.py                       # shipped Penn model + every runs/*.pt for Penn
    python tools/evaluate.py --dataset jhmdb       # shipped J-HMDB model (+ runs/ for J-HMDB)
    python tools/evaluate.py --checkpoint ours=models/weights/penn.pt \\
        --checkpoint zero=runs/penn_stgcn_zero.pt --limit 100

For each protocol of :data:`finetec_live.data.corruption.EVAL_PROTOCOLS` the corrupted
test windows are built once (one generator per sample from
:func:`~finetec_live.data.corruption.protocol_rng`), then given to every method:

- ``clean``, ``random:R``, ``burst:R:K``, ``tail:R``: the whole clip is resampled
  to the model's ``T`` frames with :func:`finetec_live.inference.preprocess.resample`, then
  the protocol's frames are removed (zeros in the positions, False in the masks).
- ``native:R``: the frames are removed from the clip at its native rate and the
  native clip goes in with its ``frame_valid``; the recognizer resamples it.

Reported per method and protocol: top-1 and mean-class accuracy, and the
completion error on the removed joints that have ground truth (valid in the
clean clip): mean Euclidean distance between the method's completed positions
(what :meth:`Recognizer.complete` returns) and the clean ones, in body-size
units (the clean window's scale from :func:`finetec_live.inference.preprocess.normalize`),
next to the same error for :func:`finetec_live.inference.preprocess.interpolate_missing`
and their ratio. Writes ``<prefix>.json``, ``<prefix>.md`` and ``<prefix>.png``.

One forward pass per window gives both the class probabilities and the
completion (:func:`infer`); the test suite checks that it agrees with
``Recognizer.classify`` and ``Recognizer.complete``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetec_live.data.corruption import EVAL_PROTOCOLS, Corruption
from finetec_live.errors import FinetecError
from finetec_live.inference.preprocess import denormalize
from finetec_live.learning.protocol import (
    DEFAULT_SEED,
    ProtocolInputs,
    accuracies,
    build_protocol,
    completion_error_sums,
    interpolation_error,
    load_test_clips,
)

log = logging.getLogger("evaluate")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BATCH = 256
DATASET_MODEL = {"penn": "penn", "jhmdb": "jhmdb"}
DATASET_LAYOUT = {"penn": "penn13", "jhmdb": "jhmdb15"}
INTERP = "linear interpolation"
# Acceptance targets for the shipped model (top-1 with missing frames as zeros plus the mask;
# completion error as a ratio to linear interpolation).
TARGETS = {
    "penn": {"top1": {"clean": 0.970, "random:0.25": 0.965, "random:0.5": 0.965,
                      "random:0.75": 0.960, "burst:0.3:3": 0.965, "burst:0.6:3": 0.960,
                      "tail:0.5": 0.935},
             "completion_ratio": {"burst:0.6:3": 0.8}},
    "jhmdb": {"top1": {"clean": 0.800, "burst:0.6:3": 0.780}, "completion_ratio": {}},
}


# --------------------------------------------------------------------------- inference
def _prepare_key(rec) -> tuple:
    cfg = rec.config
    return (rec.T, rec.layout, cfg.fill, bool(cfg.needs_kernels), getattr(cfg, "interp", "linear"))


def _concat_batches(batches):
    from finetec_live.inference.prepare import PreparedBatch

    if len(batches) == 1:
        return batches[0]
    names = ("x", "mask", "interp", "dynamic", "kin", "frame_valid", "timestamps", "centre",
             "scale")
    return PreparedBatch(**{n: np.concatenate([getattr(b, n) for b in batches]) for n in names})


def _slice_batch(batch, lo: int, hi: int):
    from finetec_live.inference.prepare import PreparedBatch

    names = ("x", "mask", "interp", "dynamic", "kin", "frame_valid", "timestamps", "centre",
             "scale")
    return PreparedBatch(**{n: getattr(batch, n)[lo:hi] for n in names})


def _map_back(comp: np.ndarray, grid: np.ndarray, ts: np.ndarray, pos: np.ndarray,
              observed: np.ndarray) -> np.ndarray:
    """Completed ``(n, T_m, V, 2)`` on the model's time grid -> the caller's frames.

    The same rule as :meth:`Recognizer.complete`: linear in time from the
    model's grid to the caller's timestamps; observed joints unchanged.
    """
    n, t_m = comp.shape[:2]
    t_in = ts.shape[1]
    if t_in == t_m and np.allclose(grid, ts, rtol=0, atol=1e-9):
        res = comp
    else:
        res = np.empty((n, t_in, *comp.shape[2:]), dtype=np.float32)
        for k in range(n):
            src = comp[k].reshape(t_m, -1)
            if grid[k, -1] > grid[k, 0]:
                cols = [np.interp(ts[k], grid[k], src[:, j]) for j in range(src.shape[1])]
                res[k] = np.stack(cols, axis=-1).reshape(t_in, *comp.shape[2:])
            else:
                res[k] = np.repeat(src[:1], t_in, axis=0).reshape(t_in, *comp.shape[2:])
    return np.where(observed[..., None], pos, res).astype(np.float32)


def forward_batch(rec, batch, batch_size: int = DEFAULT_BATCH):
    """The network on a prepared batch, in chunks: ``(probs (N, K), completed (N, T_m, V, 2))``.

    The completion is denormalised to the caller's units, on the model's time grid.
    """
    import torch

    probs, comps = [], []
    with torch.inference_mode():
        for lo in range(0, len(batch), batch_size):
            part = _slice_batch(batch, lo, lo + batch_size)
            inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(rec.device)
                      for a in part.network_inputs()]
            out = rec.model(*inputs)
            probs.append(torch.softmax(out["logits"].float(), dim=-1).cpu().numpy())
            comps.append(out["completed"].float().cpu().numpy())
    comp = denormalize(np.concatenate(comps), batch.centre, batch.scale)
    return np.concatenate(probs).astype(np.float32), comp


def infer(rec, positions, frame_valid, joint_valid=None, timestamps=None, batch=None):
    """One forward pass: ``(probs (N, K), completed (N, T, V, 2))`` in the caller's frames/units.

    Equals ``(rec.classify(...), rec.complete(...))`` for windows of one length.
    ``batch`` is the already prepared :class:`PreparedBatch` of these windows, if any.
    """
    positions = np.asarray(positions, dtype=np.float32)
    n, t_in, v = positions.shape[:3]
    frame_valid = np.asarray(frame_valid, dtype=bool)
    joint_valid = (np.ones((n, t_in, v), bool) if joint_valid is None
                   else np.asarray(joint_valid, dtype=bool))
    if timestamps is None:
        timestamps = np.broadcast_to(np.arange(t_in, dtype=np.float64) / 30.0, (n, t_in))
    if batch is None:
        batch = rec.prepare(positions, frame_valid, joint_valid, timestamps)
    probs, comp = forward_batch(rec, batch)
    observed = frame_valid[..., None] & joint_valid & np.isfinite(positions).all(-1)
    completed = _map_back(comp, batch.timestamps, np.asarray(timestamps, np.float64),
                          positions, observed)
    return probs, completed


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
        inputs.prepared[key] = _concat_batches(chunks)
        torch.set_num_threads(threads)
    return inputs.prepared[key]


# --------------------------------------------------------------------------- metrics
def evaluate_method(rec, inputs: ProtocolInputs, num_classes: int,
                    batch_size: int = DEFAULT_BATCH) -> dict:
    """Accuracy and completion error of one recognizer on one protocol's windows."""
    batch = prepared_batch(rec, inputs, batch_size)
    probs, comp = forward_batch(rec, batch, batch_size)
    probs_all = np.zeros((inputs.num_samples, probs.shape[1]), dtype=np.float32)
    total, count, lo = 0.0, 0, 0
    for g in inputs.groups:
        hi = lo + len(g)
        probs_all[g.index] = probs[lo:hi]
        observed = g.frame_valid[..., None] & g.joint_valid
        done = _map_back(comp[lo:hi], batch.timestamps[lo:hi], g.timestamps, g.positions,
                         observed)
        s, c = completion_error_sums(done, g.truth, g.missing, g.scale)
        total, count, lo = total + s, count + c, hi
    top1, mean_class = accuracies(probs_all, inputs.labels, num_classes)
    return {"top1": top1, "mean_class": mean_class,
            "completion_error": total / count if count else None,
            "missing_joints": count}


# --------------------------------------------------------------------------- driver
def default_checkpoints(dataset: str, runs: Path | None) -> list[tuple[str, str]]:
    """The shipped model for ``dataset`` plus every ``runs/*.pt`` with the dataset's layout."""
    import torch

    out = [(f"finetec (shipped {DATASET_MODEL[dataset]}.pt)", DATASET_MODEL[dataset])]
    if runs is not None and runs.is_dir():
        for p in sorted(runs.glob("*.pt")):
            try:
                ck = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as e:  # a checkpoint being written, or not ours
                log.warning("skipping %s (%s)", p, type(e).__name__)
                continue
            if isinstance(ck, dict) and ck.get("layout") == DATASET_LAYOUT[dataset]:
                out.append((p.stem, str(p)))
    return out


def run_evaluation(checkpoints: Sequence[tuple[str, str]], dataset: str = "penn",
                   protocols: Sequence[str] = EVAL_PROTOCOLS, seed: int = DEFAULT_SEED,
                   limit: int | None = None, batch_size: int = DEFAULT_BATCH,
                   data_root: str | None = None, device: str = "cpu",
                   progress: bool = True, recognizers: dict | None = None,
                   clips: Sequence | None = None) -> dict:
    """Evaluate every checkpoint under every protocol; returns the results dict (JSON-ready).

    ``recognizers`` maps names to already built recognizers (evaluated with
    the ``checkpoints``); ``clips`` replaces the test split (e.g. a subset).
    """
    from tqdm import tqdm

    from finetec_live.inference.recognizer import Recognizer

    test, class_names, layout = load_test_clips(dataset, data_root, limit)
    clips = list(test if clips is None else clips)
    recs = dict(recognizers or {})
    for name, path in checkpoints:
        recs[name] = Recognizer.from_checkpoint(path, device=device)
    if not recs:
        raise FinetecError("no model to evaluate; pass --checkpoint NAME=PATH")
    Ts = {r.T for r in recs.values()}
    for name, r in recs.items():
        if r.layout != layout:
            raise FinetecError(f"model {name} uses layout {r.layout} but {dataset} clips are "
                               f"{layout}; evaluate it on its own data set")
        if list(r.class_names) != class_names:
            raise FinetecError(f"model {name} was trained on other classes than {dataset}'s "
                               "test split; evaluate it on its own data set")
    if len(Ts) != 1:
        raise FinetecError(f"models with different window lengths {sorted(Ts)}; evaluate them "
                           "separately")
    T = Ts.pop()
    results: dict = {
        "dataset": dataset, "num_test_clips": len(clips), "seed": seed, "T": T,
        "protocols": list(protocols), "class_names": class_names,
        "methods": {name: {"checkpoint": str(dict(checkpoints).get(name, "(in memory)")),
                           "model_id": r.model_id, "method": r.method,
                           "uses_completion": r.uses_completion,
                           "config": {k: v for k, v in r.config.to_dict().items()
                                      if k in ("method", "completion", "decomposition",
                                               "physics", "channels")},
                           "command": r.checkpoint_meta.get("command"),
                           "results": {}} for name, r in recs.items()},
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
            if res["completion_error"] is not None and cnt:
                res["completion_ratio"] = res["completion_error"] / err
            else:
                res["completion_ratio"] = None
            results["methods"][name]["results"][inputs.spec] = res
            bar.update(1)
        results["seconds"][inputs.spec] = time.perf_counter() - t0
        log.info("%s done in %.1f s", inputs.spec, results["seconds"][inputs.spec])
    bar.close()
    return results


# --------------------------------------------------------------------------- reports
def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _num(v, fmt="{:.3f}") -> str:
    return "–" if v is None or not np.isfinite(v) else fmt.format(v)


def markdown_table(results: dict) -> str:
    """Methods as rows, protocols as columns: top-1, mean-class, completion error and ratio."""
    specs = results["protocols"]
    specs = [str(Corruption.parse(s)) for s in specs]
    head = "| method | " + " | ".join(specs) + " |\n|---|" + "---:|" * len(specs) + "\n"
    lines = [f"Test split: {results['num_test_clips']} clips of {results['dataset']}, "
             f"window T = {results['T']}, seed {results['seed']}; the same masks for every "
             "method (mask digests in the JSON).\n"]
    for key, title in (("top1", "Top-1 accuracy (%)"),
                       ("mean_class", "Mean-class accuracy (%)")):
        lines.append(f"\n**{title}**\n\n" + head)
        for name, m in results["methods"].items():
            cells = [_pct(m["results"].get(s, {}).get(key)) for s in specs]
            lines.append(f"| {name} | " + " | ".join(cells) + " |\n")
    cspecs = [s for s in specs if (results["interpolation"].get(s) or {}).get("missing_joints")]
    if cspecs:
        chead = ("| method | " + " | ".join(cspecs) + " |\n|---|" + "---:|" * len(cspecs)
                 + "\n")
        lines.append("\n**Completion error on the missing joints** (mean Euclidean distance "
                     "to the clean clip, body-size units; in brackets: ratio to linear "
                     "interpolation)\n\n" + chead)
        interp = results["interpolation"]
        lines.append(f"| {INTERP} | " + " | ".join(
            _num(interp[s]["completion_error"]) for s in cspecs) + " |\n")
        for name, m in results["methods"].items():
            cells = []
            for s in cspecs:
                r = m["results"].get(s, {})
                cells.append(f"{_num(r.get('completion_error'))} "
                             f"({_num(r.get('completion_ratio'), '{:.2f}')}×)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |\n")
    return "".join(lines)


def targets_table(results: dict) -> str:
    """The acceptance targets of the primary (shipped) method: target, measured, met or missed."""
    tg = TARGETS.get(results["dataset"])
    name = results.get("primary")
    if not tg or name not in results["methods"]:
        return ""
    res = results["methods"][name]["results"]
    lines = [f"\n**Targets** ({name})\n\n| protocol | metric | target | measured | |\n"
             "|---|---|---:|---:|---|\n"]
    for spec, t in tg["top1"].items():
        v = res.get(spec, {}).get("top1")
        ok = "–" if v is None else ("met" if v >= t - 1e-9 else "**missed**")
        lines.append(f"| {spec} | top-1 (%) | ≥ {100 * t:.1f} | {_pct(v)} | {ok} |\n")
    for spec, t in tg["completion_ratio"].items():
        v = res.get(spec, {}).get("completion_ratio")
        ok = "–" if v is None else ("met" if v <= t + 1e-9 else "**missed**")
        lines.append(f"| {spec} | completion error / interpolation | ≤ {t:.2f} | "
                     f"{_num(v, '{:.2f}')} | {ok} |\n")
    return "".join(lines)


def merge_results(parts: Sequence[dict]) -> dict:
    """Combine evaluations run separately (e.g. as each training finished) into one table.

    Refuses to merge runs whose test set, seed, window or masks differ: every
    method in the merged table saw exactly the same corrupted windows.
    """
    if not parts:
        raise FinetecError("nothing to merge; pass --merge A.json B.json ...")
    base = parts[0]
    out = json.loads(json.dumps(base))
    for p in parts[1:]:
        for key in ("dataset", "num_test_clips", "seed", "T"):
            if p[key] != base[key]:
                raise FinetecError(f"cannot merge evaluations with different {key} "
                                   f"({p[key]} vs {base[key]}); rerun with the same options")
        for spec, dig in p["mask_digests"].items():
            if spec in base["mask_digests"] and base["mask_digests"][spec] != dig:
                raise FinetecError(f"cannot merge: the masks of {spec} differ between runs")
        for spec in p["protocols"]:
            if spec not in out["protocols"]:
                out["protocols"].append(spec)
        for k in ("mask_digests", "interpolation", "missing_fraction"):
            out[k].update({s: v for s, v in p[k].items() if s not in out[k]})
        for name, m in p["methods"].items():
            out["methods"].setdefault(name, m)
    out["protocols"] = [s for s in EVAL_PROTOCOLS if s in out["protocols"]] + [
        s for s in out["protocols"] if s not in EVAL_PROTOCOLS]
    out.pop("seconds", None)
    out.pop("total_seconds", None)
    return out


def plot(results: dict, path: Path) -> None:
    """Top-1 against the missing fraction, one line per method, one panel per protocol family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [Corruption.parse(s) for s in results["protocols"]]
    families = [k for k in ("random", "native", "burst", "tail") if any(c.kind == k
                                                                         for c in specs)]
    if not families:
        families = sorted({c.kind for c in specs})
    clean = next((c for c in specs if c.is_clean), None)
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), sharey=True,
                             squeeze=False)
    for ax, fam in zip(axes[0], families, strict=True):
        pts = ([clean] if clean is not None else []) + [c for c in specs
                                                        if c.kind == fam and not c.is_clean]
        for name, m in results["methods"].items():
            xs = [c.rate for c in pts if str(c) in m["results"]]
            ys = [100 * m["results"][str(c)]["top1"] for c in pts if str(c) in m["results"]]
            ax.plot(xs, ys, marker="o", label=name)
        runs = {c.runs for c in pts if c.kind == "burst"}
        title = {"random": "random frames of the window", "native": "frames dropped at the "
                 "native rate", "tail": "newest frames (tail)"}.get(fam, fam)
        ax.set_title(title + (f" ({runs.pop()} bursts)" if len(runs) == 1 else ""), fontsize=10)
        ax.set_xlabel("missing fraction")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{results['dataset']} test ({results['num_test_clips']} clips)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(results: dict, prefix: Path) -> list[Path]:
    """``<prefix>.json``, ``<prefix>.md`` and ``<prefix>.png``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_suffix(".json"), prefix.with_suffix(".md"), prefix.with_suffix(".png")]
    paths[0].write_text(json.dumps(results, indent=1, default=float) + "\n")
    paths[1].write_text(markdown_table(results) + targets_table(results))
    plot(results, paths[2])
    return paths


# --------------------------------------------------------------------------- CLI
def _parse_checkpoint(text: str) -> tuple[str, str]:
    if "=" not in text:
        return Path(text).stem, text
    name, path = text.split("=", 1)
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--checkpoint wants NAME=PATH, got {text!r}")
    return name, path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="penn", choices=sorted(DATASET_MODEL))
    ap.add_argument("--checkpoint", action="append", type=_parse_checkpoint, default=[],
                    metavar="NAME=PATH", help="a model to evaluate (repeat); PATH may be "
                    "'penn' or 'jhmdb' for the shipped weights. Default: the shipped model "
                    "plus every checkpoint of the dataset's layout in --runs")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs",
                    help="folder of ablation/baseline checkpoints (default runs/)")
    ap.add_argument("--protocols", nargs="+", default=list(EVAL_PROTOCOLS))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--limit", type=int, default=None, help="evaluate on N test clips only")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", type=Path, default=None,
                    help="output prefix (default docs/results/<dataset>_evaluation)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                    help="combine earlier evaluations (same seed and masks) into one report "
                    "instead of evaluating")
    ap.add_argument("--label", action="append", type=_parse_checkpoint, default=[],
                    metavar="OLD=NEW", help="with --merge: rename a method in the report")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        if args.merge:
            results = merge_results([json.loads(p.read_text()) for p in args.merge])
            labels = dict(args.label)
            results["methods"] = {labels.get(k, k): v for k, v in results["methods"].items()}
            results["primary"] = labels.get(results["primary"], results["primary"])
            prefix = args.out or ROOT / "docs" / "results" / f"{results['dataset']}_evaluation"
            paths = write_reports(results, Path(prefix))
            print(markdown_table(results) + targets_table(results))
            print("wrote " + ", ".join(os.fspath(p) for p in paths), file=sys.stderr)
            return 0
        cks = args.checkpoint or default_checkpoints(args.dataset, args.runs)
        for s in args.protocols:
            Corruption.parse(s)
        t0 = time.perf_counter()
        results = run_evaluation(cks, args.dataset, args.protocols, args.seed, args.limit,
                                 args.batch_size, args.data_root, args.device,
                                 progress=not args.quiet)
        results["total_seconds"] = time.perf_counter() - t0
        results["threads"] = torch.get_num_threads()
        prefix = args.out or ROOT / "docs" / "results" / f"{args.dataset}_evaluation"
        paths = write_reports(results, Path(prefix))
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(results) + targets_table(results))
    print("wrote " + ", ".join(os.fspath(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
