"""Training throughput in the progress bar and the loggers: tokens and sequences per second."""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import Callback

TOKENS_PER_S = "perf/tokens_per_s"  # also read by the progress bar


class Throughput(Callback):
    """Logs ``perf/tokens_per_s`` and ``perf/samples_per_s`` over all processes, averaged over
    windows of ``window`` training batches.

    Counted from batch shapes (every position of the fixed-shape batches: what the accelerator
    computes), so nothing waits for the GPU; over a window, the time between batch ends is the
    time per batch even though CUDA runs asynchronously.
    """

    def __init__(self, window: int = 20):
        if window < 1:
            raise ValueError(f"window={window} must be at least 1")
        self.window = window
        self._start: float | None = None
        self._batches = self._samples = self._tokens = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = None  # loader start-up is not throughput

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is None:
            self._start, self._batches, self._samples, self._tokens = now, 0, 0, 0
            return
        samples, length = batch["input_ids"].shape
        self._batches += 1
        self._samples += samples * trainer.world_size
        self._tokens += samples * length * trainer.world_size
        if self._batches < self.window:
            return
        seconds = now - self._start
        pl_module.log(TOKENS_PER_S, self._tokens / seconds, prog_bar=True, on_step=True, on_epoch=False)
        pl_module.log("perf/samples_per_s", self._samples / seconds, on_step=True, on_epoch=False)
        self._start, self._batches, self._samples, self._tokens = now, 0, 0, 0
