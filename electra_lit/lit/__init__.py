"""Lightning components, by role: ``modules/`` (the LightningModules and their metrics),
``callbacks/`` (checkpointing, progress bar, throughput, FLOPs budget) and ``loggers/`` (CSV, W&B)."""

from electra_lit.lit.callbacks import (
    AtomicCheckpointIO,
    FlopsBudget,
    NonFiniteGuard,
    RandomStateCheckpoint,
    RunCheckpoint,
    StepProgressBar,
    TokenThroughputMonitor,
)
from electra_lit.lit.loggers import RunDirCSVLogger, wandb_logger
from electra_lit.lit.modules import ElectraClassifierModule, ElectraPretrainModule, PretrainMetrics

__all__ = [
    "AtomicCheckpointIO",
    "ElectraClassifierModule",
    "ElectraPretrainModule",
    "FlopsBudget",
    "NonFiniteGuard",
    "PretrainMetrics",
    "RandomStateCheckpoint",
    "RunCheckpoint",
    "RunDirCSVLogger",
    "StepProgressBar",
    "TokenThroughputMonitor",
    "wandb_logger",
]
