"""Skeleton layouts as data, and explicit mappings between them.

A :class:`Layout` is one table: joint names, the parent of every joint (a tree
rooted at the joint whose parent is -1), drawing edges, the five semantic
regions used by the dynamic/static decomposition, default segment masses and the
left-right mirror permutation. The graph convolution, the kernels and the
drawing code all read the same table.

Regions: 0 head/torso, 1 left arm, 2 right arm, 3 left leg, 4 right leg.
Shoulders and hips belong to the torso; an arm is elbow, wrist (and hand
points), a leg is knee, ankle (and foot points).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from finetec_live.errors import FinetecError

# Segment masses as fractions of total body mass, from Dempster's table as
# tabulated in D. A. Winter, "Biomechanics and Motor Control of Human Movement",
# 4th ed., Wiley 2009, Table 4.1: hand 0.006, forearm 0.016, upper arm 0.028,
# foot 0.0145, leg (shank) 0.0465, thigh 0.100, head and neck 0.081,
# trunk 0.497. Face points have no segment of their own: their bones share
# the head's mass with the neck bones. A bone kind may sum several segments
# ("forearm+hand") when the layout has no joint between them; a kind shared by
# several bones is split evenly among them, and the masses of a layout are
# normalised to sum to 1.
SEGMENT_MASS = {
    "hand": 0.006,
    "forearm": 0.016,
    "upper_arm": 0.028,
    "foot": 0.0145,
    "shank": 0.0465,
    "thigh": 0.100,
    "head": 0.081,
    "trunk": 0.497,
}


def tree_depths(parents) -> np.ndarray:
    """Depth ``(V,)`` int64 of every joint of the forest ``parents`` (-1 at each root, depth 0).

    The one tree walk of the package: layouts, the graph convolution's partitions
    and the kernels' topological order all come from here. Raises ``ValueError``
    (starting ``parents:``) for a parent index out of range or a cycle.
    """
    par = [int(p) for p in parents]
    v = len(par)
    depth = [-1] * v
    for k in range(v):
        chain, j = [], k
        while j != -1 and depth[j] < 0:
            if not -1 <= par[j] < v:
                raise ValueError(f"parents: joint {j} has parent {par[j]}, expected -1 or "
                                 f"an index in [0, {v})")
            if j in chain:
                raise ValueError(f"parents: the parent links form a cycle through joint {j}, "
                                 "expected a tree (-1 at the root)")
            chain.append(j)
            j = par[j]
        d = -1 if j == -1 else depth[j]
        for i in reversed(chain):
            d += 1
            depth[i] = d
    return np.asarray(depth, dtype=np.int64)


def topological_order(parents) -> np.ndarray:
    """Joint indices ``(V,)`` int64 with every parent before its children (by depth, stable)."""
    return np.argsort(tree_depths(parents), kind="stable").astype(np.int64)


def _masses(kinds: tuple[str, ...]) -> tuple[float, ...]:
    """Per-bone masses from per-joint bone kinds ('' for the root: no bone)."""
    counts: dict[str, int] = {}
    for k in kinds:
        if k:
            counts[k] = counts.get(k, 0) + 1
    raw = []
    for k in kinds:
        if not k:
            raw.append(0.0)
            continue
        total = sum(SEGMENT_MASS[part] for part in k.split("+"))
        raw.append(total / counts[k])
    s = sum(raw)
    return tuple(float(m / s) for m in raw)


@dataclass(frozen=True)
class Layout:
    """A skeleton layout: one row per joint.

    Attributes
    ----------
    name : short identifier stored in checkpoints (``"penn13"``).
    joints : joint names; ``left_*`` / ``right_*`` pairs define the mirror.
    parents : parent index of each joint, -1 for the single root.
    regions : region index (0..4) of each joint.
    masses : mass of the bone from ``parents[k]`` to ``k`` (fraction of body
        mass; 0 for the root).
    edges : drawing edges; the tree edges plus any extra ones.
    """

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    regions: tuple[int, ...]
    masses: tuple[float, ...]
    extra_edges: tuple[tuple[int, int], ...] = ()
    edges: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        v = len(self.joints)
        for attr in ("parents", "regions", "masses"):
            if len(getattr(self, attr)) != v:
                raise ValueError(f"layout {self.name}: {attr} has {len(getattr(self, attr))} "
                                 f"entries, needs one per joint ({v})")
        roots = [k for k, p in enumerate(self.parents) if p == -1]
        if len(roots) != 1:
            raise ValueError(f"layout {self.name}: needs exactly one root, got {roots}")
        try:  # every joint reaches the root without a cycle
            tree_depths(self.parents)
        except ValueError as e:
            raise ValueError(f"layout {self.name}: parents do not form a tree ({e})") from None
        tree = tuple((p, k) for k, p in enumerate(self.parents) if p >= 0)
        object.__setattr__(self, "edges", tree + tuple(self.extra_edges))

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    def parents_array(self) -> np.ndarray:
        return np.asarray(self.parents, dtype=np.int64)

    def regions_array(self) -> np.ndarray:
        return np.asarray(self.regions, dtype=np.int64)

    def masses_array(self) -> np.ndarray:
        return np.asarray(self.masses, dtype=np.float64)

    def depths(self) -> np.ndarray:
        """Depth of every joint in the tree ``(V,)`` (0 at the root)."""
        return tree_depths(self.parents)

    def topological_order(self) -> np.ndarray:
        """Joint indices with every parent before its children."""
        return topological_order(self.parents)

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints (mirror image)."""
        index = {n: i for i, n in enumerate(self.joints)}
        perm = []
        for n in self.joints:  # "left_wrist" and "mouth_left" alike
            if n.startswith("left_"):
                perm.append(index["right_" + n[5:]])
            elif n.startswith("right_"):
                perm.append(index["left_" + n[6:]])
            elif n.endswith("_left"):
                perm.append(index[n[:-5] + "_right"])
            elif n.endswith("_right"):
                perm.append(index[n[:-6] + "_left"])
            else:
                perm.append(index[n])
        return np.asarray(perm, dtype=np.int64)

    def adjacency(self) -> np.ndarray:
        """Symmetric (V, V) 0/1 adjacency of the drawing edges, no self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.edges:
            a[i, j] = a[j, i] = 1.0
        return a


# --- MediaPipe Pose, 33 landmarks -------------------------------------------
_MP_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
# mouth_left/right are named from the person's side, like the other pairs.
MEDIAPIPE33 = Layout(
    name="mediapipe33",
    joints=_MP_NAMES,
    parents=(-1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0,
             0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16,
             11, 12, 23, 24, 25, 26, 27, 28, 27, 28),
    regions=(0,) * 13 + (1, 2, 1, 2, 1, 2, 1, 2, 1, 2) + (0, 0) + (3, 4) * 4,
    masses=_masses(("", "head", "head", "head", "head", "head", "head", "head", "head",
                    "head", "head", "head", "head", "upper_arm", "upper_arm",
                    "forearm", "forearm", "hand", "hand", "hand", "hand", "hand", "hand",
                    "trunk", "trunk", "thigh", "thigh", "shank", "shank",
                    "foot", "foot", "foot", "foot")),
    extra_edges=((11, 12), (23, 24), (9, 10), (17, 19), (18, 20), (29, 31), (30, 32)),
)

# --- Penn Action, 13 joints -------------------------------------------------
PENN13 = Layout(
    name="penn13",
    joints=("head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
            "left_ankle", "right_ankle"),
    parents=(-1, 0, 0, 1, 2, 3, 4, 1, 2, 7, 8, 9, 10),
    regions=(0, 0, 0, 1, 2, 1, 2, 0, 0, 3, 4, 3, 4),
    masses=_masses(("", "head", "head", "upper_arm", "upper_arm", "forearm+hand",
                    "forearm+hand", "trunk", "trunk", "thigh", "thigh", "shank+foot",
                    "shank+foot")),
    extra_edges=((1, 2), (7, 8)),
)

# --- J-HMDB puppet, 15 joints (order of the dataset's joint_positions) --------
JHMDB15 = Layout(
    name="jhmdb15",
    joints=("neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip",
            "left_hip", "right_elbow", "left_elbow", "right_knee", "left_knee",
            "right_wrist", "left_wrist", "right_ankle", "left_ankle"),
    parents=(-1, 0, 0, 0, 0, 1, 1, 3, 4, 5, 6, 7, 8, 9, 10),
    regions=(0, 0, 0, 0, 0, 0, 0, 2, 1, 4, 3, 2, 1, 4, 3),
    masses=_masses(("", "trunk", "head", "trunk", "trunk", "trunk", "trunk", "upper_arm",
                    "upper_arm", "thigh", "thigh", "forearm+hand", "forearm+hand",
                    "shank+foot", "shank+foot")),
    extra_edges=((3, 4), (5, 6)),
)

# --- COCO, 17 keypoints -----------------------------------------------------
COCO17 = Layout(
    name="coco17",
    joints=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    regions=(0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 0, 0, 3, 4, 3, 4),
    masses=_masses(("", "head", "head", "head", "head", "head", "head", "upper_arm",
                    "upper_arm", "forearm+hand", "forearm+hand", "trunk", "trunk", "thigh",
                    "thigh", "shank+foot", "shank+foot")),
    extra_edges=((5, 6), (11, 12)),
)

# --- NTU RGB+D (Kinect v2), 25 joints ---------------------------------------
NTU25 = Layout(
    name="ntu25",
    joints=("spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow",
            "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist",
            "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip",
            "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
            "left_thumb", "right_hand_tip", "right_thumb"),
    parents=(-1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1,
             7, 7, 11, 11),
    regions=(0, 0, 0, 0, 0, 1, 1, 1, 0, 2, 2, 2, 0, 3, 3, 3, 0, 4, 4, 4, 0, 1, 1, 2, 2),
    masses=_masses(("", "trunk", "head", "head", "trunk", "upper_arm", "forearm", "hand",
                    "trunk", "upper_arm", "forearm", "hand", "trunk", "thigh", "shank",
                    "foot", "trunk", "thigh", "shank", "foot", "trunk", "hand", "hand",
                    "hand", "hand")),
)

LAYOUTS = {lay.name: lay for lay in (MEDIAPIPE33, PENN13, JHMDB15, COCO17, NTU25)}


def get_layout(name: str | Layout) -> Layout:
    """Look a layout up by name (a Layout passes through)."""
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise FinetecError(f"unknown skeleton layout {name!r}; known: "
                           f"{', '.join(sorted(LAYOUTS))}") from None


# --- Mappings from MediaPipe-33 ---------------------------------------------
# Each target joint is an affine combination of source joints (weights summing to 1); a
# derived joint is valid only when every source joint it uses is valid.
_MP = {n: i for i, n in enumerate(_MP_NAMES)}
_SH = ((_MP["left_shoulder"], 0.5), (_MP["right_shoulder"], 0.5))
_HIP = ((_MP["left_hip"], 0.5), (_MP["right_hip"], 0.5))


def _same_names(dst: Layout, rename: dict[str, str] | None = None) -> list:
    rename = rename or {}
    return [((_MP[rename.get(n, n)], 1.0),) for n in dst.joints]


# MediaPipe's hips sit closer together than Penn Action's annotators put them, and its
# nose lower than their head point. Measured with ``tools/check_mapping.py --raw``
# (medians over frames with head, shoulders and hips valid; Penn's training annotations
# against MediaPipe on the real-video development set ``videos/penn_real``): hip width /
# shoulder width 0.878 (Penn) vs 0.601 (MediaPipe); head above the shoulder midpoint /
# torso length 0.383 vs 0.320. So penn13's hips are MediaPipe's spread about their
# midpoint by PENN_HIP_SPREAD, and its head the nose moved away from the shoulder
# midpoint by PENN_HEAD_RAISE (affine weights, summing to 1, some negative); mapped, the
# medians are 0.878 and 0.375 (``tools/check_mapping.py``).
PENN_HIP_SPREAD = 1.46
PENN_HEAD_RAISE = 1.17


def _spread(a: str, b: str, factor: float) -> tuple:
    """Joint ``a`` moved away from the midpoint of ``a`` and ``b`` by ``factor``."""
    return ((_MP[a], 0.5 + factor / 2), (_MP[b], 0.5 - factor / 2))


def _penn13_from_mediapipe() -> list:
    rows = _same_names(PENN13, {"head": "nose"})
    k = PENN_HEAD_RAISE - 1.0
    rows[PENN13.joints.index("head")] = ((_MP["nose"], 1.0 + k), *((j, -k * w) for j, w in _SH))
    rows[PENN13.joints.index("left_hip")] = _spread("left_hip", "right_hip", PENN_HIP_SPREAD)
    rows[PENN13.joints.index("right_hip")] = _spread("right_hip", "left_hip", PENN_HIP_SPREAD)
    return rows


_FROM_MEDIAPIPE = {
    "mediapipe33": _same_names(MEDIAPIPE33),
    "penn13": _penn13_from_mediapipe(),
    "coco17": _same_names(COCO17),
    "jhmdb15": [
        {"neck": _SH,
         "belly": tuple((j, w * 0.5) for j, w in _SH + _HIP),
         "face": ((_MP["nose"], 1.0),)}.get(n, ((_MP[n], 1.0),) if n in _MP else None)
        for n in JHMDB15.joints
    ],
}


# Between annotated layouts: the same joint names (J-HMDB's puppet ``face`` is Penn's
# ``head``); J-HMDB's neck and belly have no Penn joint.
_JH = {n: i for i, n in enumerate(JHMDB15.joints)}
_MAPPINGS = {("mediapipe33", dst): rows for dst, rows in _FROM_MEDIAPIPE.items()}
_MAPPINGS[("jhmdb15", "penn13")] = [((_JH["face" if n == "head" else n], 1.0),)
                                    for n in PENN13.joints]


# COCO-17 (PYSKL's HRNet files): its nose is MediaPipe's, so Penn's head is placed from it
# as from MediaPipe's (raised away from the shoulder midpoint by PENN_HEAD_RAISE); eyes and
# ears are unused. COCO's hips are left where its annotators put them.
_CO = {n: i for i, n in enumerate(COCO17.joints)}
_CO_SH = ((_CO["left_shoulder"], 0.5), (_CO["right_shoulder"], 0.5))
_COCO_TO_PENN = [((_CO[n], 1.0),) for n in (n if n != "head" else "nose" for n in PENN13.joints)]
_COCO_TO_PENN[PENN13.joints.index("head")] = (
    (_CO["nose"], PENN_HEAD_RAISE), *((j, -(PENN_HEAD_RAISE - 1.0) * w) for j, w in _CO_SH))
_MAPPINGS[("coco17", "penn13")] = _COCO_TO_PENN
# NTU RGB+D's Kinect joints carry Penn's names (its head is the head's centre)
_NT = {n: i for i, n in enumerate(NTU25.joints)}
_MAPPINGS[("ntu25", "penn13")] = [((_NT[n], 1.0),) for n in PENN13.joints]


def exchange_penn13_sides() -> None:
    """Exchange the targets' sides of every mapping into penn13 (its own inverse).

    Penn's files hold the person's right side in penn13's left_* joints (its front views
    have left_shoulder on the image's left), unlike MediaPipe, COCO, J-HMDB and NTU
    (measured in tests/test_layouts.py); the network learns Penn's files, so at import
    the mappings into penn13 follow Penn: a source's left joints go to right_*."""
    for key in [k for k in _MAPPINGS if k[1] == "penn13"]:
        _MAPPINGS[key] = [_MAPPINGS[key][k] for k in PENN13.flip_permutation()]


exchange_penn13_sides()


def mapping_matrix(src: str | Layout, dst: str | Layout) -> np.ndarray:
    """Weights ``(V_dst, V_src)``: ``dst_positions = W @ src_positions``."""
    src, dst = get_layout(src), get_layout(dst)
    if src.name == dst.name:
        return np.eye(src.num_joints, dtype=np.float32)
    if (src.name, dst.name) not in _MAPPINGS:
        known = ", ".join(f"{a} to {b}" for a, b in sorted(_MAPPINGS))
        raise FinetecError(f"no mapping from layout {src.name} to {dst.name}; mappings exist "
                           f"from {known}")
    w = np.zeros((dst.num_joints, src.num_joints), dtype=np.float32)
    for i, sources in enumerate(_MAPPINGS[(src.name, dst.name)]):
        for j, weight in sources:
            w[i, j] = weight
    return w


def map_layout(positions: np.ndarray, joint_valid: np.ndarray, src: str | Layout,
               dst: str | Layout) -> tuple[np.ndarray, np.ndarray]:
    """Map ``positions (..., V_src, C)`` and ``joint_valid (..., V_src)`` to ``dst``.

    A target joint is valid when all the source joints it is built from are
    valid; invalid targets hold 0.
    """
    w = mapping_matrix(src, dst)
    positions = np.asarray(positions, dtype=np.float32)
    joint_valid = np.asarray(joint_valid, dtype=bool)
    if positions.shape[-2] != w.shape[1] or joint_valid.shape != positions.shape[:-1]:
        raise ValueError(f"positions {positions.shape} / joint_valid {joint_valid.shape} do not "
                         f"match layout {get_layout(src).name} ({w.shape[1]} joints)")
    used = w != 0  # (V_dst, V_src)
    # valid iff no used source joint is invalid
    invalid_src = (~joint_valid).astype(np.float32)  # (..., V_src)
    valid = (invalid_src @ used.T.astype(np.float32)) == 0  # (..., V_dst)
    filled = np.where(joint_valid[..., None], positions, 0.0)
    out = np.einsum("ds,...sc->...dc", w, filled).astype(np.float32)
    out[~valid] = 0.0
    return out, valid
