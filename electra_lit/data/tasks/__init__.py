"""Fine-tuning data: task definitions (GLUE and your own files) and their DataModule."""

from electra_lit.data.tasks.datamodule import TaskDataModule
from electra_lit.data.tasks.glue import Task

__all__ = ["Task", "TaskDataModule"]
