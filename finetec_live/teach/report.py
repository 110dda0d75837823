"""What a teaching run writes next to its checkpoint: ``<out>.report.md`` (per-class
validation accuracy, the open-set thresholds, the clips skipped and why),
``<out>.report.json`` (the same, for programs) and ``<out>.confusion.png``.

Validation is on the clips held out of training, cut into live windows (the checkpoint's
window and hop) and decided as ``finetec-live`` decides them (a class, ``unknown`` or
``idle``); a clip's label is the majority of its windows.
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path

import numpy as np

from finetec_live.inference.openset import OPEN_SET_LABELS

log = logging.getLogger(__name__)


def validation_table(class_names, truth: np.ndarray, labels: list[str],
                     source: np.ndarray) -> dict:
    """Per class: windows right, clips right (majority label); ``labels`` the decisions of
    windows whose class index is ``truth`` and clip ``source``."""
    labels = np.asarray(labels, dtype=object)
    out = {"classes": {}, "windows": len(labels)}
    clips_right = clips = win_right = 0
    for k, name in enumerate(class_names):
        mine = truth == k
        right = int((labels[mine] == name).sum())
        per_clip = [collections.Counter(labels[mine & (source == s)]).most_common(1)[0][0]
                    for s in np.unique(source[mine])]
        c_right = sum(m == name for m in per_clip)
        wrong = collections.Counter(x for x in labels[mine] if x != name)
        out["classes"][name] = {"windows": int(mine.sum()), "windows_right": right,
                                "clips": len(per_clip), "clips_right": int(c_right),
                                "wrong_to": dict(wrong.most_common(3))}
        clips_right, clips, win_right = clips_right + c_right, clips + len(per_clip), \
            win_right + right
    out.update(clips=clips, clips_right=int(clips_right), windows_right=int(win_right))
    return out


def confusion(class_names, truth: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list]:
    """Counts ``(K, K + 2)``: rows the true classes, columns the classes then ``unknown``
    and ``idle``."""
    cols = [*class_names, *OPEN_SET_LABELS]
    at = {c: i for i, c in enumerate(cols)}
    m = np.zeros((len(class_names), len(cols)), dtype=np.int64)
    for t, lab in zip(truth, labels, strict=True):
        m[int(t), at[lab]] += 1
    return m, cols


def plot_confusion(path: Path, class_names, matrix: np.ndarray, cols) -> None:
    """A confusion-matrix PNG (shares of each true class's windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = matrix / matrix.sum(1, keepdims=True).clip(1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(cols), 1.0 + 0.5 * len(class_names)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("decision")
    ax.set_ylabel("true class")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title("validation windows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(rep: dict) -> str:
    v = rep.get("validation")
    lines = [f"# {rep['model_id']}", "",
             f"Taught from {rep['source']} ({rep['kind']}): {len(rep['class_names'])} classes, "
             f"{rep['clips']['train']} training and {rep['clips']['validation']} validation "
             f"clips; live window {rep['window_seconds']:g} s every {rep['hop_seconds']:g} s; "
             f"{rep['steps']} steps in {rep['seconds']['total']:.0f} s "
             f"({rep['seconds']['poses']:.0f} s of pose estimation) on {rep['device']}."]
    if rep["clips"].get("checkpoint_trained_on", 0) > rep["clips"]["train"]:
        lines[-1] += (" The validation below is a model's trained without the validation "
                      "clips; the checkpoint is the same recipe trained on all "
                      f"{rep['clips']['checkpoint_trained_on']} clips.")
    lines.append("")
    if v:
        lines += ["## Validation (held-out clips, live windows, open-set decisions)", "",
                  "| class | clips right | windows right | wrong windows went to |",
                  "|---|---:|---:|---|"]
        for name, c in v["classes"].items():
            wrong = ", ".join(f"{k} {n}" for k, n in c["wrong_to"].items()) or "–"
            lines.append(f"| {name} | {c['clips_right']} / {c['clips']} | "
                         f"{c['windows_right']} / {c['windows']} | {wrong} |")
        lines.append(f"| **all** | **{v['clips_right']} / {v['clips']}** | "
                     f"**{v['windows_right']} / {v['windows']}** | |")
        lines += ["", "Confusion matrix: " + Path(rep["confusion_png"]).name, ""]
    else:
        lines += ["No validation clips (`--val-fraction 0`): no accuracy to report.", ""]
    o = rep["open_set"]
    lines += ["## Open set", ""]
    if o and o.get("similar_below") is not None:
        lines.append(f"`idle` when every region's motion score is below {o['idle_floor']:.5f}; "
                     f"`unknown` when the cosine similarity of a window's features to the "
                     f"nearest class prototype is below {o['similar_below']:.3f} "
                     f"({o['calibration'].get('unknown_rule', '')}).")
    elif o:
        lines.append(f"`idle` when every region's motion score is below {o['idle_floor']:.5f}; "
                     f"`unknown` when the top probability is below {o['unknown_below']:.3f} "
                     f"({o['calibration'].get('unknown_rule', '')}).")
    else:
        lines.append("Not calibrated: labels are always one of the classes.")
    others = rep["other_actions"]
    lines += ["", f"Other actions: {others.get('for_training', 0)} clips for outlier exposure, "
              f"{others.get('held_out', 0)} held out for calibration "
              f"({', '.join(f'{k} {n}' for k, n in others.get('sources', {}).items()) or 'none'})"
              + (f"; classes left out as the same action: "
                 f"{', '.join(others['left_out_classes'])}" if others.get("left_out_classes")
                 else "") + ".", "", "## Skipped inputs", ""]
    lines += [f"- {s['path']}: {s['reason']}" for s in rep["skipped"]] or ["None."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, rep: dict, class_names, truth=None, labels=None) -> dict:
    """Write the report files next to ``out``; returns the paths written."""
    paths = {"markdown": out.with_suffix(".report.md"), "json": out.with_suffix(".report.json")}
    if truth is not None and len(truth):
        paths["confusion_png"] = out.with_suffix(".confusion.png")
        m, cols = confusion(class_names, truth, labels)
        rep["confusion"] = {"columns": cols, "counts": m.tolist()}
        plot_confusion(paths["confusion_png"], class_names, m, cols)
        rep["confusion_png"] = str(paths["confusion_png"])
    paths["markdown"].write_text(_markdown(rep), encoding="utf-8")
    paths["json"].write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")
    return paths
