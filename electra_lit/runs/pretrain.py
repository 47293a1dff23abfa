"""A pretraining run: ``train(cfg)`` builds tokenizer, data and models from config and fits them.

Everything the run writes goes to ``cfg.run_dir`` (laid out by :class:`RunDir`); if that folder
holds a checkpoint the run resumes from it (global step, optimizer, LR schedule and data position).
"""

from __future__ import annotations

import csv
import logging

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from electra_lit.config.checks import validate_config
from electra_lit.data.tokenizer import save_tokenizer
from electra_lit.errors import ConfigError
from electra_lit.runs.resume import check_fits, resume_checkpoint
from electra_lit.runs.run_dir import RunDir
from electra_lit.runs.setup import begin_run, make_trainer
from electra_lit.runs.summary import summary_lines

log = logging.getLogger(__name__)


def accumulate_for_batch_tokens(trainer: L.Trainer, cfg: DictConfig) -> None:
    """Set gradient accumulation so that one optimizer step sees ``cfg.batch_tokens`` tokens over
    all processes; validation and checkpoints stay every ``trainer.val_check_interval`` steps."""
    per_pass = cfg.data.batch_size * cfg.data.max_seq_length * trainer.world_size
    if cfg.batch_tokens % per_pass:
        raise ConfigError(
            f"batch_tokens={cfg.batch_tokens} is not a multiple of data.batch_size x data.max_seq_length x "
            f"{trainer.world_size} process(es) = {per_pass}; use e.g. batch_tokens={max(1, round(cfg.batch_tokens / per_pass)) * per_pass}"
        )
    trainer.accumulate_grad_batches = cfg.batch_tokens // per_pass
    trainer.val_check_interval = cfg.trainer.val_check_interval * trainer.accumulate_grad_batches
    log.info("batch_tokens=%d: %d batches of %d x %d tokens per step on each of %d process(es)", cfg.batch_tokens,
             trainer.accumulate_grad_batches, cfg.data.batch_size, cfg.data.max_seq_length, trainer.world_size)


def train(cfg: DictConfig) -> dict[str, float]:
    """Pretrain as ``cfg`` says; returns the final metrics (``train/loss``, ``val/disc_acc``, ...)."""
    validate_config(cfg)
    ckpt_path, checkpoint = resume_checkpoint(cfg)
    run = begin_run(cfg)

    tokenizer = instantiate(cfg.tokenizer)
    if ckpt_path:
        check_fits(checkpoint, ckpt_path, cfg, tokenizer)
        del checkpoint
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    module = instantiate(cfg.module, vocab_size=tokenizer.get_vocab_size(), _recursive_=False)
    module.tokenizer_json = tokenizer.to_str()  # checkpoints carry their tokenizer
    if cfg.init_from and not ckpt_path:
        from electra_lit.hf import load_pretrained

        init_from = cfg.init_from if isinstance(cfg.init_from, str) else OmegaConf.to_container(cfg.init_from)
        load_pretrained(module.generator, module.main_model, init_from)

    trainer = make_trainer(cfg, run)
    if cfg.batch_tokens:
        accumulate_for_batch_tokens(trainer, cfg)
    if trainer.is_global_zero:
        save_tokenizer(tokenizer, run.tokenizer)

    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.is_global_zero:
        print("\n".join(summary_lines(trainer, run.root)), flush=True)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def last_logged(run: RunDir, metric: str) -> float | None:
    """The last value of ``metric`` in the run's metrics.csv: what a re-run of a finished run
    (which trains nothing) reports, so that a repeated sweep still sees every job's result."""
    if not run.metrics.is_file():
        return None
    with run.metrics.open() as file:
        values = [row[metric] for row in csv.DictReader(file) if row.get(metric)]
    return float(values[-1]) if values else None


def sweep_objective(cfg: DictConfig) -> float | None:
    """Pretrain, and return what a Hydra sweeper optimises: the final ``val/loss``."""
    metrics = train(cfg)
    return metrics.get("val/loss", last_logged(RunDir(cfg.run_dir), "val/loss"))
