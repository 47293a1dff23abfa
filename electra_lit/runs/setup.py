"""The setup every run shares, pretraining and fine-tuning alike: checks that the trainer can run
here, the config tree, seeds and matmul precision (:func:`begin_run`), then loggers, callbacks, the
Trainer and the saved config (:func:`make_trainer`). Parallelism and precision are decided here,
from the ``trainer`` group, never in model code."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from electra_lit.errors import ConfigError
from electra_lit.lit.callbacks.checkpoint import RunCheckpoint
from electra_lit.lit.loggers.wandb import log_config
from electra_lit.runs.console import hide_lightning_tips, print_config_tree
from electra_lit.runs.lock import RunLock, is_launch_rank_zero
from electra_lit.runs.remote import RemoteRunFolder
from electra_lit.runs.run_dir import RunDir


def check_trainer_runs_here(trainer: DictConfig) -> None:
    """Refuse, in one line, a trainer this machine cannot run, naming the option to use instead."""
    accelerator = trainer.get("accelerator")
    strategy_target = _strategy_name(trainer)
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU and PyTorch sees none; use trainer=cpu "
            "(or trainer=ddp trainer.accelerator=cpu trainer.precision=32-true for several CPU processes)"
        )
    if accelerator == "tpu" and importlib.util.find_spec("torch_xla") is None:
        raise ConfigError(
            "trainer.accelerator=tpu needs torch_xla (on a TPU VM: pip install torch_xla); "
            "elsewhere use trainer=gpu or trainer=cpu"
        )
    if "deepspeed" in strategy_target.lower() and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "trainer=deepspeed needs the deepspeed package: pip install 'electra_lit[deepspeed]'; "
            "or shard with trainer=fsdp"
        )


def configured_device(trainer: DictConfig) -> torch.device:
    """The device type ``trainer.accelerator`` will run on here (``auto`` picks CUDA when present)."""
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device({"gpu": "cuda", "tpu": "xla"}.get(accelerator, accelerator))


def _strategy_name(trainer: DictConfig) -> str:
    strategy = trainer.get("strategy")
    return strategy.get("_target_", "") if isinstance(strategy, DictConfig) else str(strategy or "")


def begin_run(cfg: DictConfig) -> RunDir:
    """Before anything is built or written: the trainer and ``compile`` fit this machine, the run
    folder can be one and this run owns it (its lock), the config tree is printed, every random
    generator is seeded and fp32 matmuls get their precision. Returns the run's folder."""
    check_trainer_runs_here(cfg.trainer)
    if "compile" in cfg:
        OmegaConf.to_object(cfg.compile).check_runs_on(configured_device(cfg.trainer), _strategy_name(cfg.trainer))
    run = RunDir(cfg.local_run_dir)  # run_dir, or the local mirror of a URL run_dir (runs/remote.py)
    run.check_usable()
    if is_launch_rank_zero():
        RunLock(run.lock, cfg.run_lock_stale_minutes).acquire()
    if cfg.print_config:
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    return run


def make_trainer(
    cfg: DictConfig, run: RunDir, callbacks: Sequence[L.Callback] = (), remote: RemoteRunFolder | None = None
) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the loggers of ``cfg.logger`` and the callbacks of
    ``cfg.callbacks`` (plus ``callbacks``); global rank 0 then saves the resolved config into the
    run folder and hands it to W&B. With a ``remote`` run folder, each checkpoint save puts the
    run folder there."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [*(instantiate(c) for c in (cfg.get("callbacks") or {}).values()), *callbacks]
    hide_lightning_tips()
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    if remote is not None:
        for callback in trainer.callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.after_save.append(remote.push)
    if trainer.is_global_zero:
        run.root.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run.config, resolve=True)
        log_config(loggers, OmegaConf.to_container(cfg, resolve=True))
    return trainer
