"""Fine-tuning data: task definitions (GLUE, built-in ones and your own files) and their DataModule."""

from __future__ import annotations

from electra_lit.data.tasks import austen_novel
from electra_lit.data.tasks.datamodule import TaskDataModule
from electra_lit.data.tasks.glue import Example, Task
from electra_lit.errors import ConfigError

# Tasks whose examples are made in the package (a task's ``source``): reader(task, split, labelled).
BUILTIN_SOURCES = {"austen_novel": austen_novel.read_split}


def read_builtin(task: Task, split: str, labelled: bool) -> list[Example]:
    """The examples of ``split`` of a built-in task (``task.source``)."""
    reader = BUILTIN_SOURCES.get(task.source)
    if reader is None:
        raise ConfigError(f"task.source={task.source!r} is not one of {', '.join(BUILTIN_SOURCES)}; or give null")
    return reader(task, split, labelled)


__all__ = ["BUILTIN_SOURCES", "Task", "TaskDataModule", "read_builtin"]
