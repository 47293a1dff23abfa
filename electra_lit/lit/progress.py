"""The console during pretraining: one rich progress bar over optimizer steps, not epochs.

Lightning's bar counts the batches of an epoch, which for a run defined by ``max_steps`` reads
"Epoch 3/-2" and, for a streamed corpus (no known length), has no end. This one counts global
steps to ``max_steps``, so its elapsed / remaining times are the run's.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """``RichProgressBar`` whose training bar runs from step 0 to ``max_steps`` (with ETA)."""

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self.trainer.max_steps > 0 else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            # continue from the current step (a new epoch or a resumed run), without a jump in speed
            self.progress.reset(self.train_progress_bar_id, total=self.total_train_batches,
                                completed=trainer.global_step, description=self._get_train_description(0))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
