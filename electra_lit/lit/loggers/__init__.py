"""Loggers that write into the run folder: metrics.csv, and W&B runs that follow the run folder."""

from electra_lit.lit.loggers.csv import RunDirCSVLogger
from electra_lit.lit.loggers.wandb import wandb_logger

__all__ = ["RunDirCSVLogger", "wandb_logger"]
