"""Checkpointing that never loses the last steps of a run and keeps its data position exact."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastStepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` at the run's final step (``max_steps``).

    The stock callback saves every N steps, so the steps after the last multiple of N would be
    lost. Saving after ``fit`` returns is no fix: that state records a finished epoch, and a
    longer re-run would start a new, reshuffled epoch instead of continuing this one. Inside the
    loop, at the last batch, the saved state (loader position included) resumes exactly.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step >= trainer.max_steps > 0 and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
