"""Lightning components: the pretraining module, its metrics, logger and callbacks."""

from electra_lit.lit.checkpoint import AtomicCheckpointIO, RandomStateCheckpoint, RunCheckpoint
from electra_lit.lit.csv_logger import RunDirCSVLogger
from electra_lit.lit.metrics import PretrainMetrics
from electra_lit.lit.pretrain import ElectraPretrainModule
from electra_lit.lit.progress import StepProgressBar
from electra_lit.lit.summary import summary_lines
from electra_lit.lit.throughput import Throughput

__all__ = [
    "AtomicCheckpointIO",
    "ElectraPretrainModule",
    "PretrainMetrics",
    "RandomStateCheckpoint",
    "RunCheckpoint",
    "RunDirCSVLogger",
    "StepProgressBar",
    "Throughput",
    "summary_lines",
]
