"""A compute budget for pretraining: ``budget.flops`` training FLOPs, then the run stops.

Comparing objectives (ELECTRA against BERT's MLM, ...) is only fair at equal compute, and a step
of one costs more than a step of another (ELECTRA's generator, All-Tokens MLM's head at every
position), so equal step counts are not equal compute. The budget is counted in the same analytic
FLOPs as ``perf/flops_total`` (:func:`electra_lit.lit.callbacks.throughput.flops_total`).

The budget sets the run's length rather than cutting it short: at setup it becomes
``ceil(budget / FLOPs per optimizer step)`` steps, which replace ``trainer.max_steps``, so the LR
schedule decays to 0 exactly at the budget (a run cut off mid-schedule would stop at a high
learning rate and compare badly), and the progress bar, its ETA and the final checkpoint follow.
After each optimizer step the spent FLOPs are checked; at the budget ``trainer.should_stop`` is
set, which makes Lightning validate that step, and :class:`~electra_lit.lit.RunCheckpoint` saves
it as last.ckpt and names the budget in the closing summary.

The wall-clock budget is Lightning's own ``trainer.max_time`` (its Timer callback, whose elapsed
time the checkpoint keeps across resumes); RunCheckpoint saves the step it stops on too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import Timer

from electra_lit.errors import ConfigError
from electra_lit.lit.callbacks.throughput import flops_per_step

log = logging.getLogger(__name__)


@dataclass
class BudgetConfig:
    """Pretraining's ``budget``: what the run may spend before it stops."""

    # training FLOPs (forward + backward, every model and device) at which pretraining stops; they set trainer.max_steps, where the LR schedule ends; null = no budget
    flops: float | None = None

    def __post_init__(self) -> None:
        if self.flops is not None and not self.flops > 0:
            raise ConfigError(
                f"budget.flops={self.flops} must be positive (training FLOPs, e.g. budget.flops=1e15), "
                "or null for no budget"
            )


class FlopsBudget(L.Callback):
    """Stops training once ``flops`` training FLOPs are spent (see the module docstring).

    Args:
        flops: the budget, in analytic training FLOPs over every device.
    """

    def __init__(self, flops: float):
        BudgetConfig(flops)  # the same check as the config's
        self.flops = flops
        self.per_step: int | None = None  # FLOPs of one optimizer step, known at setup

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # before the module's own setup, which configures the LR schedule from trainer.max_steps
        self.per_step = flops_per_step(trainer, pl_module.batch_flops(trainer.datamodule))
        if not self.per_step:
            raise ConfigError(
                f"budget.flops={self.flops:g} needs the FLOPs of a step, and this run's datamodule gives no "
                "fixed batch shape (batch_size, max_seq_length, collator.max_predictions); set budget.flops=null"
            )
        steps = math.ceil(self.flops / self.per_step)
        log.info(
            "budget.flops=%g: %d optimizer steps of %.4g FLOPs; they replace trainer.max_steps=%d, so the "
            "LR schedule ends at step %d",
            self.flops,
            steps,
            self.per_step,
            trainer.max_steps,
            steps,
        )
        trainer.fit_loop.epoch_loop.max_steps = steps  # what trainer.max_steps reads

    def spent(self, trainer: L.Trainer) -> bool:
        return self.per_step is not None and self.per_step * trainer.global_step >= self.flops

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.should_stop or not self.spent(trainer):
            return
        log.info(
            "Stopped at the FLOPs budget: step %d, %.4g training FLOPs >= budget.flops=%g",
            trainer.global_step,
            self.per_step * trainer.global_step,
            self.flops,
        )
        trainer.should_stop = True


def spent_budget(trainer: L.Trainer) -> str | None:
    """``key=value`` of the budget this run has used up (``budget.flops``, ``trainer.max_time``),
    for the closing lines; None when no budget is spent."""
    for callback in trainer.callbacks:
        if isinstance(callback, FlopsBudget) and callback.spent(trainer):
            return f"budget.flops={callback.flops:g}"
        remaining = callback.time_remaining() if isinstance(callback, Timer) else None
        if remaining is not None and remaining <= 0:
            duration = callback.time_elapsed() + remaining
            return f"trainer.max_time={timedelta(seconds=round(duration))}"
    return None
