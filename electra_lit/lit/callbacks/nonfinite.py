"""Stop a diverging run before it overwrites a good checkpoint with NaN weights.

A loss or gradient that becomes NaN or infinite (an LR far too high, fp16 overflow) poisons the
weights at the next optimizer step, and every later checkpoint. This callback notes, on the
device and without a host sync, the first step whose loss or gradient norm is not finite, and
looks at the note only every ``check_every_n_steps`` steps and before every checkpoint save
(the only moments a host sync is paid). When it finds one, the save does not happen and the
run stops with one line (exit code 2) naming the step it began at, the last good checkpoint and
what to try. With several processes the ranks agree (one collective per check) so all stop
together.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from electra_lit.errors import RunFault


class NonFiniteGuard(L.Callback):
    """Args:
    check_every_n_steps: optimizer steps between two looks at the device-side flag (and before
        every checkpoint); the run stops at most this many steps after the loss turns non-finite.
    """

    def __init__(self, check_every_n_steps: int = 50):
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps={check_every_n_steps} must be at least 1")
        self.check_every_n_steps = check_every_n_steps
        self._first_bad_step: torch.Tensor | None = None  # -1 while every step has been finite

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad_step = torch.full((), -1, dtype=torch.long, device=pl_module.device)

    def _note(self, finite: torch.Tensor, step: int) -> None:
        """Record ``step`` as the first bad one when ``finite`` (a device bool) is False: no sync."""
        first = self._first_bad_step
        self._first_bad_step = torch.where(~finite & (first < 0), torch.full_like(first, step), first)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._first_bad_step is None or str(trainer.precision) == "16-mixed":
            return  # fp16's gradient scaler skips non-finite gradients itself
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:  # DeepSpeed keeps gradients to itself: the loss check remains
            return
        try:
            norms = torch.stack(torch._foreach_norm(grads))
        except (RuntimeError, TypeError, NotImplementedError):  # gradients of a kind foreach cannot take
            norms = torch.stack([g.detach().norm() for g in grads])
        self._note(torch.isfinite(norms).all(), trainer.global_step + 1)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._first_bad_step is None:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._note(torch.isfinite(loss.detach()), trainer.global_step)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer, pl_module, saving=False)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._check(trainer, pl_module, saving=True)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule, saving: bool) -> None:
        if self._first_bad_step is None:
            return
        weights_finite = True
        if saving:  # a checkpoint must never hold non-finite weights, whatever made them so
            weights_finite = bool(torch.stack([torch.isfinite(p).all() for p in pl_module.parameters()]).all())
        first_bad = int(self._first_bad_step)  # the host sync, here only
        bad = first_bad >= 0 or not weights_finite
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise RunFault(self._message(trainer, pl_module, first_bad, saving))

    @staticmethod
    def _message(trainer: L.Trainer, pl_module: L.LightningModule, first_bad: int, saving: bool) -> str:
        began = f"at step {first_bad}" if first_bad >= 0 else "in the weights"
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") or ""
        saved_step = getattr(checkpoint, "_last_global_step_saved", 0)
        kept = f"the last good checkpoint is {last} (step {saved_step})" if last else "no checkpoint was written"
        lr = getattr(pl_module, "hparams", {}).get("optimizer", {}).get("lr")
        lower = f"optimizer.lr={lr / 10:g} (now {lr:g})" if lr else "a lower optimizer.lr"
        go_on = f"continue from it (ckpt_path={last}) or start again" if last else "start again"
        return (
            f"the loss or gradients became non-finite (NaN/inf) {began}; stopped at step {trainer.global_step}"
            f"{' without saving' if saving else ''}: {kept}; {go_on} with {lower}, more warm-up "
            "(lr_schedule.warmup_steps), or trainer.precision=32-true / bf16-mixed instead of 16-mixed"
        )
