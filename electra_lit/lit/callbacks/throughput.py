"""Training throughput through Lightning's ``ThroughputMonitor``: tokens, sequences and FLOPs per
second and model FLOPs utilisation (MFU, ``perf/mfu``) where the device's peak is known.

Lightning counts; this subclass only says what to count and what not to log:

- samples are batch rows and items are tokens, every position of the fixed-shape batch (what
  the accelerator computes, padding included); FLOPs per batch come from the LightningModule's
  ``flops_per_batch`` (:func:`electra_lit.models.pretraining_flops`).
- training only. Lightning would also log validation throughput, with validation-batch counts
  as the step (rows out of step order in metrics.csv) and the training ``flops_per_batch`` (a
  wrong MFU). Validation batches are still timed, so that validation time is kept out of the
  training rates.
- the peak FLOP/s behind MFU comes from electra_lit's table (:mod:`electra_lit.peak_flops`:
  H100, H200, A100, L4 in bf16, TF32 and fp32) or from ``peak_tflops``, not from Lightning's
  (which has no plain "NVIDIA H200"); MFU is logged as ``perf/mfu``.
- the latest tokens/s stays on the callback (``tokens_per_s``) for the progress bar, which shows
  it at every step, also when no logger is configured; until ``window_size`` batches have run it
  is the rate over the batches so far (from the second on), not Lightning's nothing.

Logged every ``trainer.log_every_n_steps`` steps once ``window_size`` batches have run (rates are
rolling averages over the last ``window_size`` batch ends), under Lightning's names:
``train/device/items_per_sec`` (tokens/s per device), ``train/device/samples_per_sec``,
``train/device/batches_per_sec``, ``train/device/flops_per_sec``, ``perf/mfu`` (where the peak
is known), with more than one process also the totals
``train/items_per_sec``, ``train/samples_per_sec``, ``train/batches_per_sec``,
``train/flops_per_sec``; and the counts since the run (re)started ``train/time`` (seconds),
``train/batches``, ``train/samples``, ``train/lengths`` (tokens).

``perf/flops_total`` is the analytic training FLOPs since step 0 (:func:`flops_total`), logged at
the same rows from the first one on (no window to wait for) and once more at the step the run
stopped on when the cadence missed it (``trainer.max_time``, a budget, a signal), so the last value
in metrics.csv is the run's total. It is worked out from the global step, not counted, so a resumed
run carries on from its checkpoint's step. A row of step s holds the FLOPs of s + 1 steps: Lightning
numbers a step's metrics rows from 0.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.trainer.states import RunningStage

from electra_lit.peak_flops import matmul_precision, peak_flops

TOKENS_PER_S = "train/device/items_per_sec"  # tokens per second on each device, in metrics.csv
MFU = "perf/mfu"  # model FLOPs utilisation of each device, in metrics.csv
FLOPS_TOTAL = "perf/flops_total"  # training FLOPs since step 0 over all devices, in metrics.csv


def flops_per_step(trainer: L.Trainer, flops_per_batch: int | None) -> int | None:
    """Training FLOPs of one optimizer step over every device: ``flops_per_batch`` (one device's
    micro-batch) for each accumulated micro-batch on each device; None without a batch count."""
    if flops_per_batch is None:
        return None
    return flops_per_batch * trainer.accumulate_grad_batches * trainer.world_size


def flops_total(trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
    """Training FLOPs of the optimizer steps done so far, from step 0: derived from the global
    step rather than counted in memory, so that a resumed run counts on from its checkpoint."""
    per_step = flops_per_step(trainer, getattr(pl_module, "flops_per_batch", None))
    return None if per_step is None else per_step * trainer.global_step


def batch_rows(batch: dict) -> int:
    """Samples in a batch: its sequences."""
    return batch["input_ids"].shape[0]


def batch_positions(batch: dict) -> int:
    """Items in a batch: its tokens, (batch, seq) positions, padding included."""
    return batch["input_ids"].numel()


class TokenThroughputMonitor(ThroughputMonitor):
    """``ThroughputMonitor`` over pretraining batches, logging the training stage only.

    Args:
        window_size: batches in the rolling averages (at least 2: a rate needs two batch ends).
        peak_tflops: the device's peak TFLOP/s for ``perf/mfu``; None = from the table of
            :mod:`electra_lit.peak_flops` by device name and the trainer's precision.
    """

    def __init__(self, window_size: int = 20, peak_tflops: float | None = None):
        if window_size < 2:
            raise ValueError(f"window_size={window_size} must be at least 2")
        if peak_tflops is not None and peak_tflops <= 0:
            raise ValueError(f"peak_tflops={peak_tflops} must be > 0 (or null: from the device table)")
        super().__init__(batch_size_fn=batch_rows, length_fn=batch_positions, window_size=window_size)
        self.peak_tflops = peak_tflops
        self.tokens_per_s: float | None = None  # over all processes; read by StepProgressBar
        self._flops_logged_at: int | None = None  # the global step of the last perf/flops_total row

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.available_flops = self._peak_flops(trainer)
        for throughput in self._throughputs.values():
            throughput.available_flops = self.available_flops

    def _peak_flops(self, trainer: L.Trainer) -> float | None:
        if self.peak_tflops is not None:
            return self.peak_tflops * 1e12
        device = trainer.strategy.root_device
        if device.type != "cuda":
            return None
        return peak_flops(torch.cuda.get_device_name(device), matmul_precision(trainer.precision, device.type))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, *args)
        if trainer.is_global_zero:  # Lightning counts on rank zero only
            rates = self._throughputs[RunningStage.TRAINING].compute()
            # the total exists with several processes only; with one, the device's rate is the total
            rate = rates.get("items_per_sec", rates.get("device/items_per_sec"))
            self.tokens_per_s = rate if rate is not None else self._rate_so_far(self.tokens_per_s)

    def _rate_so_far(self, default: float | None) -> float | None:
        """Tokens/s over all processes from the batch ends counted so far, while the window is not
        yet full (Lightning's rates wait for ``window_size`` of them): the bar shows a rate from the
        second step on."""
        counts = self._throughputs[RunningStage.TRAINING]
        times, tokens = list(counts._time), list(counts._lengths)
        if len(times) < 2 or len(tokens) != len(times) or times[-1] <= times[0]:
            return default
        return (tokens[-1] - tokens[0]) / (times[-1] - times[0]) * counts.world_size

    def _compute(self, trainer: L.Trainer, iter_num: int | None = None) -> None:
        # training only: see the module docstring
        if trainer.state.stage != RunningStage.TRAINING or not trainer._logger_connector.should_update_logs:
            return
        rates = self._throughputs[RunningStage.TRAINING].compute()
        metrics = {f"train/{name}": value for name, value in rates.items() if name != "device/mfu"}
        if "device/mfu" in rates:
            metrics[MFU] = rates["device/mfu"]
        total = flops_total(trainer, trainer.lightning_module)
        if total is not None:
            metrics[FLOPS_TOTAL] = total
            self._flops_logged_at = trainer.global_step
        trainer._logger_connector.log_metrics(metrics, step=iter_num)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._flops_logged_at = trainer.global_step  # a resumed run that trains no step adds no row

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the run's total at the step it stopped on, when the logging cadence did not fall on it
        total = flops_total(trainer, pl_module)
        if not trainer.is_global_zero or total is None or self._flops_logged_at == trainer.global_step:
            return
        # the row of the step's other metrics: Lightning numbers them from 0, one behind global_step
        trainer._logger_connector.log_metrics({FLOPS_TOTAL: total}, step=trainer.global_step - 1)
        self._flops_logged_at = trainer.global_step
