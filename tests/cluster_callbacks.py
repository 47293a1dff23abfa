"""Callbacks that tests add to CLI runs (``+callbacks.NAME._target_=cluster_callbacks.X``), with
tests/ on PYTHONPATH: a signal at a chosen step, and a record of the batches each rank trains on."""

import hashlib
import os
import signal

import lightning as L


class SignalAtStep(L.Callback):
    """Sends ``signal_name`` (KILL, TERM, USR1) to this process after training step ``step``; with
    ``group``, to its whole process group (loader workers included), as scancel and timeout do."""

    def __init__(self, step: int, signal_name: str, group: bool = False):
        self.step, self.signum, self.group = step, getattr(signal, f"SIG{signal_name}"), group

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and trainer.is_global_zero:
            if self.group:
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getpid(), self.signum)


class RecordBatches(L.Callback):
    """Appends ``rank step digest`` for every training batch to ``path``.rank."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        digest = hashlib.sha1(b"".join(batch[k].cpu().numpy().tobytes() for k in sorted(batch))).hexdigest()
        with open(f"{self.path}.{trainer.global_rank}", "a") as f:
            f.write(f"{trainer.global_rank} {trainer.global_step} {digest}\n")


class KillAfterSave(L.Callback):
    """kill -9 this process the moment the checkpoint of global step ``step`` is written (the worst
    time for what was logged around it)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_start(self, trainer, pl_module):
        checkpoint = trainer.checkpoint_callback
        save = checkpoint._save_checkpoint

        def save_then_die(trainer, filepath):
            save(trainer, filepath)
            if trainer.global_step == self.step:
                os.kill(os.getpid(), signal.SIGKILL)

        checkpoint._save_checkpoint = save_then_die
