"""Clips of other actions, for a taught model's ``unknown``.

A model that has only seen the user's classes gives one of them to everything. Windows of
other actions fix that twice: while fine-tuning, trained towards the uniform distribution
(outlier exposure), and afterwards, held-out ones set the ``unknown`` threshold. They come
from the skeleton data sets under the data root (Penn Action's and J-HMDB's training
clips, when the data root holds them) and from folders of the user's own videos of other
actions (``finetec-train --other DIR``). A data-set class whose name is one of the user's
classes (:func:`same_action`) is left out: it is not another action.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace

from finetec_live.data.clips import Clip
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import map_layout

log = logging.getLogger(__name__)

HELD_OUT_FRACTION = 0.25
HELD_OUT_SEED = 11


def _words(name: str) -> frozenset[str]:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    return frozenset(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words)


def same_action(a: str, b: str) -> bool:
    """Whether two class names may name one action: the same letters once case and
    separators are gone (``Pull-Ups`` is ``pullup``), or the words of one among the other's
    (``golf`` and ``golf_swing``; ``swing_baseball`` and ``baseball_swing``). Erring towards
    "the same" only leaves a data set's class out of the other actions."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return False
    letters = [re.sub(r"[^a-z0-9]", "", x.lower()).rstrip("s") for x in (a, b)]
    return letters[0] == letters[1] or wa <= wb or wb <= wa


def _dataset_clips(name: str, root, layout: str) -> list[Clip]:
    from finetec_live.data import load_dataset

    # Penn's annotated convention: every placed joint valid, as a pose estimator gives them
    # (the taught classes are estimated poses; the other actions must not differ by that)
    clipset = load_dataset(name, root, **({"mask": "annotated"} if name == "penn" else {}))
    out = []
    for c in clipset.train():
        pos, jv = (c.positions, c.joint_valid) if c.layout == layout else map_layout(
            c.positions, c.joint_valid, c.layout, layout)
        out.append(Clip(name=f"{name}/{c.name}", positions=pos, joint_valid=jv, label=0,
                        label_name=c.label_name, split="train", fps=c.fps, layout=layout))
    return out


def other_actions(class_names: Sequence[str], layout: str, datasets: Sequence[str] = (
        "penn", "jhmdb"), data_root=None, video_clips: Sequence[Clip] = ()
        ) -> tuple[list[Clip], list[Clip], dict]:
    """``(for_training, held_out, summary)``: clips of actions none of ``class_names``
    is, from ``datasets`` (those found) and ``video_clips``, split stratified by action
    with a fixed seed; ``summary`` says where they came from and what was left out."""
    from finetec_live.learning.windows import split_train_val

    clips, summary = [], {"sources": {}, "left_out_classes": [], "missing": []}
    for name in datasets:
        try:
            found = _dataset_clips(name, data_root, layout)
        except FinetecError as exc:
            summary["missing"].append(f"{name}: {exc}")
            log.info("other actions: %s not used (%s)", name, exc)
            continue
        kept = [c for c in found if not any(same_action(c.label_name, n) for n in class_names)]
        gone = sorted({c.label_name for c in found} - {c.label_name for c in kept})
        summary["left_out_classes"] += [f"{name}/{g}" for g in gone]
        summary["sources"][name] = len(kept)
        clips += kept
    if video_clips:
        summary["sources"]["videos"] = len(video_clips)
        clips += [replace(c, label=0) for c in video_clips]
    if not clips:
        return [], [], summary
    # stratify by action: relabel by action name for the split, then back to 0
    actions = sorted({c.label_name for c in clips})
    index = {a: i for i, a in enumerate(actions)}
    by_action = [replace(c, label=index[c.label_name]) for c in clips]
    train, held = split_train_val(by_action, HELD_OUT_FRACTION, HELD_OUT_SEED)
    zero = [replace(c, label=0) for c in train], [replace(c, label=0) for c in held]
    summary.update(actions=len(actions), for_training=len(zero[0]), held_out=len(zero[1]))
    return zero[0], zero[1], summary
