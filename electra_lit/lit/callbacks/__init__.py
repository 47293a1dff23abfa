"""Lightning callbacks and the checkpoint IO plugin of a pretraining run."""

from electra_lit.lit.callbacks.budget import FlopsBudget
from electra_lit.lit.callbacks.checkpoint import AtomicCheckpointIO, RandomStateCheckpoint, RunCheckpoint
from electra_lit.lit.callbacks.nonfinite import NonFiniteGuard
from electra_lit.lit.callbacks.progress import StepProgressBar
from electra_lit.lit.callbacks.throughput import TokenThroughputMonitor

__all__ = [
    "AtomicCheckpointIO",
    "FlopsBudget",
    "NonFiniteGuard",
    "RandomStateCheckpoint",
    "RunCheckpoint",
    "StepProgressBar",
    "TokenThroughputMonitor",
]
