"""What a training or refit run is asked to do: :class:`TrainOptions`, one field per option of
``tools/train.py`` (the command line fills it; its defaults are the command's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from finetec_live.learning.windows import VAL_FRACTION

# completion options a refit may change (``None``: keep the base checkpoint's)
COMPLETION_FIELDS = ("completion_hidden", "completion_blocks", "completion_mixing",
                     "completion_dilation_cycle", "completion_attention", "completion_bank",
                     "completion_bank_k", "interp")


@dataclass
class TrainOptions:
    """Options of one run of :func:`~finetec_live.learning.train.train` or
    :func:`~finetec_live.learning.refit.refit_completion` (see ``tools/train.py --help``)."""

    out: Path | None = None
    dataset: str = "penn"
    method: str = "finetec"
    no_completion: bool = False
    no_decomposition: bool = False
    no_physics: bool = False
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    subset: int | None = None
    resume: Path | None = None
    device: str = "cpu"
    data_root: str | None = None
    threads: int = 1
    val_fraction: float = VAL_FRACTION
    window_seconds: float = 2.5
    hop_seconds: float = 0.5
    crop_prob: float = 0.5
    crop_seconds: tuple[float, float] = (1.2, 3.5)
    mask_prob: float = 0.85
    native_prob: float = 0.15
    channels: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    quiet: bool = False
    refit_completion: Path | None = None
    freeze_completion: bool = False
    refine_epochs: int = 0
    gap_prob: float = 0.0
    grow_completion: bool = False
    completion_hidden: int | None = None
    completion_blocks: int | None = None
    completion_mixing: str | None = None
    completion_attention: int | None = None
    completion_dilation_cycle: int | None = None
    completion_bank: int | None = None
    completion_bank_k: int | None = None
    bank_crops: int = 2
    bank_split: bool = False
    bank_only: bool = False
    interp: str | None = None
    init: Path | None = None
    reveal_prob: float = 0.0
    tempo_prob: float = 0.0
    estimator_prob: float = 0.0
    transplant_prob: float = 0.0
    outliers: str | None = None
    outlier_weight: float = 0.5
    outlier_share: float = 0.25
    real_videos: str | None = None
    real_folds: int = 4
    real_fold: int | None = None
    outlier_videos: tuple[str, ...] | None = None
    real_share: float = 1.0
    pose_cache: str = "runs/pose_cache"

    def __post_init__(self) -> None:
        for name in ("out", "resume", "refit_completion", "init"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Path):
                setattr(self, name, Path(v))
        self.crop_seconds = tuple(float(v) for v in self.crop_seconds)
        if isinstance(self.outlier_videos, str):
            self.outlier_videos = (self.outlier_videos,)
        for name in ("channels", "strides"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, tuple(int(x) for x in v))

    def completion_overrides(self) -> dict:
        """The completion options given (not ``None``): ``{ModelConfig field: value}``."""
        return {k: getattr(self, k) for k in COMPLETION_FIELDS if getattr(self, k) is not None}

    def to_record(self) -> dict:
        """Plain data for a checkpoint (paths as strings, tuples as lists)."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[k] = v
        return out
