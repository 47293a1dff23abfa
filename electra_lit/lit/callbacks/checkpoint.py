"""Checkpointing that loses nothing: atomic files, saves by steps, by wall time, at the last step
and on preemption signals, and the random state of every rank so a resumed run replays exactly."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from electra_lit.errors import RunFault
from electra_lit.lit.callbacks.budget import spent_budget
from electra_lit.ranks import gather_from_ranks, own_part
from electra_lit.runs.run_dir import RunDir, previous_checkpoint

log = logging.getLogger(__name__)

MULTI_PROCESS_CHECK_EVERY = 10  # steps between the (collective) time and signal checks with several ranks


def checkpoint_bytes(value: Any) -> int:
    """Bytes of the tensors in a checkpoint dict: about its size on disk."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(checkpoint_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(checkpoint_bytes(item) for item in value)
    return 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file next to it (``.last.ckpt.tmp``, never the system's
    temp folder) and renames it into place, so a crash during a save never leaves a half-written
    file; the file it replaces is kept as ``*.previous.ckpt``, the fallback when the newest one
    turns out unreadable. A save that fails (disk full, I/O error) removes its temporary file,
    leaves the previous checkpoints as they were and stops the run with one line."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            # written here, not by Lightning's atomic save: that one goes through an fsspec
            # transaction, which stages the file in the system's temp folder (left behind by a
            # kill, and copied, not renamed, when /tmp is another filesystem)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
        except OSError as err:
            tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
            raise RunFault(
                f"could not write the checkpoint {path}: {err.strerror or err} (it needs about "
                f"{checkpoint_bytes(checkpoint) / 2**20:.0f} MB, {free / 2**20:.0f} MB are free there); the "
                "previous checkpoints are intact: free space and run the same command to resume from them"
            ) from None
        if path.exists():
            os.replace(path, previous_checkpoint(path))
        os.replace(tmp, path)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing the run folder's ``last.ckpt`` (``RunDir.last_checkpoint``)
    every ``every_n_train_steps`` and also:

    - at the run's final step (``max_steps``): a save after ``fit`` would record a finished epoch,
      and a longer re-run would start a new epoch instead of continuing this one;
    - every ``every_n_minutes`` of wall time, so a long step interval loses little to a crash;
    - on SIGTERM, and SIGUSR1 unless Lightning's SLURM auto-requeue owns it: the batch in flight
      ends, ``last.ckpt`` is written and the run stops cleanly (exit code 0), to be resumed by
      running the same command again;
    - at the step another callback stops the run on (``trainer.should_stop``: the FLOPs budget,
      Lightning's Timer of ``trainer.max_time``), which none of the saves above may fall on;
      ``stopped_by`` then names the spent budget for the closing summary.

    A step's metrics rows and its checkpoint agree after any crash: a save due at a step that also
    validates waits for the validation's end, when that step's training and validation rows are
    logged (except at a stopping step, see ``on_train_batch_end``); every save first writes the
    loggers' pending rows to disk; and a resumed run drops the rows logged after its checkpoint,
    which it logs again.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *args: Any,
        every_n_train_steps: int | None = None,
        every_n_minutes: float | None = None,
        **kwargs: Any,
    ):
        run = RunDir(run_dir)
        # one fixed name, whatever the folder was called when the restored state was saved: with
        # the version counter, a moved or copied run folder would write last-v1.ckpt beside last.ckpt.
        # Saves by steps are this class's (see _save_due), not ModelCheckpoint's triggers.
        super().__init__(
            *args,
            dirpath=run.checkpoints,
            enable_version_counter=False,
            every_n_train_steps=0,
            every_n_epochs=0,
            **kwargs,
        )
        self.every_n_steps = every_n_train_steps
        self.CHECKPOINT_NAME_LAST = run.LAST
        self.every_n_minutes = every_n_minutes
        self._last_save_time = time.monotonic()
        self._signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._save_after_validation = False
        self.stopped_by: str | None = None
        self.after_save: list[Any] = []  # called on global rank 0 after each save (a remote run folder's put)

    # ------------------------------------------------------------ signals
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:  # rows after the checkpoint are about to be logged again
            if hasattr(logger, "resume_at"):
                logger.resume_at(trainer.global_step)
        self._last_save_time = time.monotonic()
        signals = [signal.SIGTERM]
        # the environment Lightning's signal connector looks at (a single-device strategy has none of its own)
        environment = getattr(trainer._accelerator_connector, "cluster_environment", None)
        if not (isinstance(environment, SLURMEnvironment) and environment.auto_requeue):
            signals.append(signal.SIGUSR1)
        for signum in signals:
            try:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        if self._save_after_validation:  # a validation that was due did not run: save without it
            self._save_after_validation = False
            if not self._should_skip_saving_checkpoint(trainer):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # ------------------------------------------------------------ saving
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        step = trainer.global_step
        at_end = step >= trainer.max_steps > 0
        by_steps = bool(self.every_n_steps) and step % self.every_n_steps == 0
        stopping = trainer.should_stop  # by a callback before this one: Lightning runs checkpoints last
        signalled, time_due = self._checks(trainer)
        if stopping and not signalled and self.stopped_by is None:
            self.stopped_by = spent_budget(trainer) or "trainer.should_stop"
        due = at_end or by_steps or stopping or signalled or time_due
        if due and not self._should_skip_saving_checkpoint(trainer):
            # a stopping step saves at once: Lightning validates it only because the run stops, and a
            # resume from a save after that validation would number the next steps' rows one too low
            if not (signalled or stopping) and _validates_after_this_step(trainer):
                self._save_after_validation = True  # then this step's validation rows precede it
            else:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if time_due or signalled:
            self._last_save_time = time.monotonic()
        if signalled:
            self.stopped_by = "a preemption signal"
            log.info(
                "Preemption signal: saved %s at step %d; run the same command to resume",
                self.last_model_path,
                trainer.global_step,
            )
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._save_after_validation and not trainer.sanity_checking:
            self._save_after_validation = False
            if not self._should_skip_saving_checkpoint(trainer):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        for logger in trainer.loggers:  # rows up to this step reach the disk before the checkpoint
            logger.save()
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            for call in self.after_save:
                call()

    def _checks(self, trainer: L.Trainer) -> tuple[bool, bool]:
        """(a signal arrived on any rank, the wall-time interval is over on rank 0): the same on every rank."""
        if trainer.world_size > 1 and trainer.global_step % MULTI_PROCESS_CHECK_EVERY:
            return False, False
        time_due = (
            self.every_n_minutes is not None and time.monotonic() - self._last_save_time >= 60 * self.every_n_minutes
        )
        signalled = self._signal is not None
        if trainer.world_size > 1:
            time_due = trainer.strategy.broadcast(time_due)
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        return signalled, time_due


def _validates_after_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning validates right after the training step that just ended (its own rule,
    a private method; False if a Lightning version lacks it: then the save happens at once)."""
    loop = trainer.fit_loop
    try:
        if loop.epoch_loop._skip_next_val:  # the first step after a resume does not validate again
            return False
        return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))
    except (AttributeError, TypeError):
        return False


def _rng_states() -> dict[str, Any]:
    """Tensors and plain values only, so checkpoints load with ``torch.load(weights_only=True)``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached))
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomStateCheckpoint(Callback):
    """Saves every rank's random generators (the generator's sampling, dropout) in checkpoints and
    restores them before the first resumed step, so the resumed steps draw what an uninterrupted
    run draws. Validation runs on a copy of the state, so it never shifts training's draws."""

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self._before_validation: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"per_rank": gather_from_ranks(_rng_states())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = own_part(state_dict["per_rank"], "random states")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self._to_restore is not None:
            _set_rng_states(self._to_restore)
            self._to_restore = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._before_validation = _rng_states()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._before_validation is not None:
            _set_rng_states(self._before_validation)
            self._before_validation = None
