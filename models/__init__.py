"""Networks and shipped weights (installed as ``finetec_live.models``)."""

from .config import LIMITS, METHODS, ModelConfig
from .network import (
    FinetecNet,
    compute_losses,
    finite_differences,
    spatial_partitions,
)

__all__ = [
    "LIMITS",
    "METHODS",
    "FinetecNet",
    "ModelConfig",
    "compute_losses",
    "finite_differences",
    "spatial_partitions",
]
