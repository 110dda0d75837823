"""Reports of an evaluation: Markdown tables, the acceptance targets, a plot, and the merge
of evaluations run separately (same test set, seed and masks).

``results`` is the dict of :func:`finetec_live.learning.evaluate.run_evaluation`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetec_live.data.corruption import EVAL_PROTOCOLS, Corruption
from finetec_live.errors import FinetecError

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


def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _num(v, fmt="{:.3f}") -> str:
    return "–" if v is None or not np.isfinite(v) else fmt.format(v)


def markdown_table(results: dict) -> str:
    """Methods as rows, protocols as columns: top-1, mean-class, completion error and ratio."""
    specs = results["protocols"]
    specs = [str(Corruption.parse(s)) for s in specs]
    head = "| method | " + " | ".join(specs) + " |\n|---|" + "---:|" * len(specs) + "\n"
    joints = ("; occluded joints given with their annotated positions"
              if results.get("joints") == "annotated" else "")
    lines = [f"Test split: {results['num_test_clips']} clips of {results['dataset']}{joints}, "
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


def models_table(results: dict) -> str:
    """Which checkpoint each row is: file SHA-256, ``model_id`` and the command of every run
    that made it (the checkpoint's ``stages``, oldest first)."""
    lines = ["\n**Models**\n\n| method | model_id | sha256 (file) | made by |\n"
             "|---|---|---|---|\n"]
    for name, m in results["methods"].items():
        sha = m.get("sha256")
        stages = m.get("stages") or []
        cmds = "<br>".join(f"{i + 1}. `{s.get('command', '?')}`" for i, s in enumerate(stages))
        where = f" ({m['shipped']})" if m.get("shipped") else ""
        lines.append(f"| {name} | {m.get('model_id', '–')} | "
                     f"{sha[:16] if sha else '(in memory)'}{where} | {cmds or '–'} |\n")
    return "".join(lines)


def report_text(results: dict) -> str:
    """The whole Markdown report: tables, targets and models."""
    return markdown_table(results) + targets_table(results) + models_table(results)


def relabel(results: dict, labels: dict[str, str]) -> dict:
    """Rename methods (``{old: new}``), the primary one included."""
    results["methods"] = {labels.get(k, k): v for k, v in results["methods"].items()}
    results["primary"] = labels.get(results["primary"], results["primary"])
    return results


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
    paths[1].write_text(report_text(results))
    plot(results, paths[2])
    return paths
