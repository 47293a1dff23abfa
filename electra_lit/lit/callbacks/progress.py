"""The console during pretraining: one rich progress bar over optimizer steps, not epochs.

Lightning's bar counts the batches of an epoch, which for a run defined by ``max_steps`` reads
"Epoch 3/-2" and, for a streamed corpus (no known length), has no end. This one counts global
steps to ``max_steps`` on one clock across epochs, so its elapsed / remaining times are the run's,
and it shows the speed that matters for pretraining, tokens per second over all processes (from
:class:`~electra_lit.lit.callbacks.throughput.TokenThroughputMonitor`, from the second step on),
instead of it/s. Its metrics have short names, its times stay in hours past a day, and its bar
takes the width the rest of the line leaves, so that the line fits the terminal (120 columns and
more) instead of wrapping.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import CustomTimeColumn, ProcessingSpeedColumn
from rich.progress import BarColumn, ProgressColumn, Task
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

    The rate is the monitor's ``tokens_per_s``, a number the monitor sets on the training thread
    after each batch and rich reads when it renders, in a thread of its own (which must not read
    the trainer's metrics): the bar shows the rate of the step it shows, whatever the order of
    the callbacks."""

    def __init__(self, progress_bar: StepProgressBar, speed: ProgressColumn, monitor: TokenThroughputMonitor | None):
        super().__init__()
        self.progress_bar, self.speed, self.monitor = progress_bar, speed, monitor

    @property
    def rate(self) -> float | None:
        return self.monitor.tokens_per_s if self.monitor is not None else None

    def render(self, task: Task) -> Text:
        if task.id != self.progress_bar.train_progress_bar_id:
            return self.speed.render(task)
        rate = self.rate
        return Text(human_rate(rate) if rate is not None else "- tok/s", style=self.speed.style)


def clock(seconds: float | None) -> str:
    """93784 -> '26:03:04': hours past a day stay hours, never '1 day, 2:03:04' (a column's width)."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class RunTimeColumn(ProgressColumn):
    """Elapsed and remaining time as Lightning's time column shows them, in hours past a day too."""

    max_refresh = 0.5  # as Lightning's: no jitter

    def __init__(self, style):
        super().__init__()
        self.style = style

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(f"{clock(elapsed)} • {clock(task.time_remaining)}", style=self.style)


# The bar's names for the metrics it shows: short, so that the line fits 120 columns (metrics.csv
# keeps the full names: auc is the discriminator's ROC AUC, disc_auc there, and gain its disc_gain)
SHORT_NAMES = {"train/loss": "loss", "train/disc_auc": "auc", "val/disc_auc": "val_auc", "val/disc_gain": "val_gain"}
PROGRESS_BAR_METRICS = tuple(SHORT_NAMES)  # what the module logs with prog_bar=True
# the widest text of each column but the bar: time, tokens/s, metrics; the bar gets what is left
TIME_WIDTH, RATE_WIDTH = len("99:59:59 • 99:59:59"), len("999.9k tok/s")
METRICS_WIDTH = len("loss: 42.123 auc: 0.851 val_auc: 0.851 val_gain: -0.123")
MIN_BAR_WIDTH, MAX_BAR_WIDTH = 5, 40


class StepProgressBar(RichProgressBar):
    """``RichProgressBar`` whose training bar runs from step 0 to ``max_steps`` on one clock for the
    whole run (with ETA), shows tokens/s and fits its line to the terminal's width."""

    _tokens_column: TokensPerSecondColumn | None = None

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self.trainer.max_steps > 0 else super().total_train_batches

    def configure_columns(self, trainer: L.Trainer) -> list:
        columns = super().configure_columns(trainer)
        monitor = next((c for c in trainer.callbacks if isinstance(c, TokenThroughputMonitor)), None)
        for i, column in enumerate(columns):
            if isinstance(column, ProcessingSpeedColumn):
                self._tokens_column = columns[i] = TokensPerSecondColumn(self, column, monitor)
            elif isinstance(column, BarColumn):
                column.bar_width = self._bar_width(trainer)
            elif isinstance(column, CustomTimeColumn):
                columns[i] = RunTimeColumn(column.style)
        return columns

    def _bar_width(self, trainer: L.Trainer) -> int:
        """The console's width less the other columns' widest text and the spaces between them."""
        steps = len(str(max(trainer.max_steps, 1)))
        others = len(self.validation_description) + 2 * steps + 1 + TIME_WIDTH + RATE_WIDTH + METRICS_WIDTH
        width = self._console.width if self._console is not None else 120
        return max(MIN_BAR_WIDTH, min(MAX_BAR_WIDTH, width - others - 5))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        # the monitor logs to the loggers only, never to the bar's metrics: the rate is not listed twice
        return {SHORT_NAMES.get(name, name): value for name, value in super().get_metrics(trainer, pl_module).items()}

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning resets the bar every epoch, and with it the elapsed time and the speed behind the
        # ETA; here the bar is made once, at the current step (a resumed run's), and then kept.
        if self.is_disabled or self.progress is None:
            return
        if self.train_progress_bar_id is None:
            self.train_progress_bar_id = self.progress.add_task(
                self._get_train_description(0), total=self.total_train_batches, completed=trainer.global_step
            )
        else:
            self.progress.update(self.train_progress_bar_id, total=self.total_train_batches, visible=True)
        self.refresh()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
