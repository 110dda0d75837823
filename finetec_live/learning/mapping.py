"""Where a layout puts the head, shoulders and hips, as ratios a camera does not change
much: measured on Penn Action's annotations and on MediaPipe poses of real videos, they
check the MediaPipe -> penn13 mapping (``tools/check_mapping.py``)."""

from __future__ import annotations

import numpy as np

from finetec_live.skeleton.layouts import get_layout

RATIOS = ("head_above_shoulders", "shoulder_width", "hip_width", "hip_to_shoulder_width")


def body_ratios(positions: np.ndarray, joint_valid: np.ndarray, layout: str = "penn13"
                ) -> dict[str, np.ndarray]:
    """Per frame with head, both shoulders and both hips valid (``positions (N, V, 2)``):
    the head's height above the shoulders' midpoint along the torso, the shoulder and hip
    widths (each over the torso length: shoulders' midpoint to hips' midpoint) and hip
    width over shoulder width."""
    lay = get_layout(layout)
    j = {n: i for i, n in enumerate(lay.joints)}
    need = [j["head"], j["left_shoulder"], j["right_shoulder"], j["left_hip"], j["right_hip"]]
    p = np.asarray(positions, np.float64)[np.asarray(joint_valid, bool)[:, need].all(1)]
    sh = (p[:, j["left_shoulder"]] + p[:, j["right_shoulder"]]) / 2
    hp = (p[:, j["left_hip"]] + p[:, j["right_hip"]]) / 2
    torso = np.linalg.norm(sh - hp, axis=1)
    keep = torso > 1e-6
    p, sh, hp, torso = p[keep], sh[keep], hp[keep], torso[keep]
    up = (sh - hp) / torso[:, None]
    shw = np.linalg.norm(p[:, j["left_shoulder"]] - p[:, j["right_shoulder"]], axis=1)
    hpw = np.linalg.norm(p[:, j["left_hip"]] - p[:, j["right_hip"]], axis=1)
    return {"head_above_shoulders": ((p[:, j["head"]] - sh) * up).sum(1) / torso,
            "shoulder_width": shw / torso, "hip_width": hpw / torso,
            "hip_to_shoulder_width": hpw / np.maximum(shw, 1e-6)}


def summary(ratios: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Median and quartiles of each ratio, and the number of frames."""
    return {k: {"median": float(np.median(v)), "q25": float(np.percentile(v, 25)),
                "q75": float(np.percentile(v, 75)), "frames": int(v.size)}
            for k, v in ratios.items() if v.size}
