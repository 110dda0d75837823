"""Networks and shipped weights (installed as ``finetec_live.models``)."""

from .network import (
    METHODS,
    FinetecNet,
    ModelConfig,
    build_model,
    compute_losses,
    finite_differences,
    spatial_partitions,
)

__all__ = [
    "METHODS",
    "FinetecNet",
    "ModelConfig",
    "build_model",
    "compute_losses",
    "finite_differences",
    "spatial_partitions",
]
