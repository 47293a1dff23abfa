"""The console during pretraining: one rich progress bar over optimizer steps, not epochs.

Lightning's bar counts the batches of an epoch, which for a run defined by ``max_steps`` reads
"Epoch 3/-2" and, for a streamed corpus (no known length), has no end. This one counts global
steps to ``max_steps``, so its elapsed / remaining times are the run's, and it shows the speed that
matters for pretraining, tokens per second over all processes (from
:class:`~electra_lit.lit.callbacks.throughput.TokenThroughputMonitor`), instead of it/s.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.progress import ProgressColumn, Task
from rich.text import Text

from electra_lit.lit.callbacks.throughput import TokenThroughputMonitor


def human_rate(tokens_per_s: float) -> str:
    """12345.6 -> '12.3k tok/s': short enough for a progress bar's column."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if tokens_per_s >= scale:
            return f"{tokens_per_s / scale:.1f}{unit} tok/s"
    return f"{tokens_per_s:.0f} tok/s"


class TokensPerSecondColumn(ProgressColumn):
    """The training bar's tokens/s; other bars (validation) keep Lightning's it/s.

    The rate is handed over by the progress bar on the training thread (``rate``): rich renders in a
    thread of its own, which must not read the trainer's metrics."""

    def __init__(self, progress_bar: StepProgressBar, speed: ProgressColumn):
        super().__init__()
        self.progress_bar, self.speed = progress_bar, speed
        self.rate: float | None = None

    def render(self, task: Task) -> Text:
        if task.id != self.progress_bar.train_progress_bar_id:
            return self.speed.render(task)
        text = human_rate(self.rate) if self.rate is not None else "- tok/s"
        return Text(text, style=self.speed.style)


class StepProgressBar(RichProgressBar):
    """``RichProgressBar`` whose training bar runs from step 0 to ``max_steps`` (with ETA) and shows tokens/s."""

    _tokens_column: TokensPerSecondColumn | None = None

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self.trainer.max_steps > 0 else super().total_train_batches

    def configure_columns(self, trainer: L.Trainer) -> list:
        columns = super().configure_columns(trainer)
        for i, column in enumerate(columns):
            if isinstance(column, ProcessingSpeedColumn):
                self._tokens_column = columns[i] = TokensPerSecondColumn(self, column)
        return columns

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        # the monitor logs to the loggers only, never to the bar's metrics: the rate is not listed twice
        monitor = next((c for c in trainer.callbacks if isinstance(c, TokenThroughputMonitor)), None)
        if monitor is not None and monitor.tokens_per_s is not None and self._tokens_column is not None:
            self._tokens_column.rate = monitor.tokens_per_s
        return super().get_metrics(trainer, pl_module)

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            # continue from the current step (a new epoch or a resumed run), without a jump in speed
            self.progress.reset(
                self.train_progress_bar_id,
                total=self.total_train_batches,
                completed=trainer.global_step,
                description=self._get_train_description(0),
            )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
