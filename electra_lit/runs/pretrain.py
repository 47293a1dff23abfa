"""A pretraining run: ``train(cfg)`` builds tokenizer, data and models from config and fits them.

Everything the run writes goes to ``cfg.run_dir`` (laid out by :class:`RunDir`); if that folder
holds a checkpoint the run resumes from it (global step, optimizer, LR schedule and data position).
"""

from __future__ import annotations

import copy
import csv
import logging

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from tokenizers import Tokenizer

from electra_lit import storage
from electra_lit.config.schema import validate_config
from electra_lit.data.pretraining.shards import shard_folders
from electra_lit.data.tokenizer import save_tokenizer
from electra_lit.lit.callbacks.budget import FlopsBudget
from electra_lit.lit.modules.pretrain import ElectraPretrainModule
from electra_lit.runs.batch import configured_world_size, plan_from_config
from electra_lit.runs.console import print_and_log
from electra_lit.runs.remote import open_remote
from electra_lit.runs.resume import check_ckpt_path, check_fits, resume_checkpoint, runs_own_tokenizer
from electra_lit.runs.run_dir import RunDir
from electra_lit.runs.setup import begin_run, make_trainer
from electra_lit.runs.summary import summary_lines

log = logging.getLogger(__name__)


def with_batch_plan(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose ``data.batch_size`` and ``trainer.accumulate_grad_batches`` are the
    plan for the devices its trainer config names: checks, the datamodule and the saved config see
    the numbers the run uses."""
    plan = plan_from_config(cfg, configured_world_size(cfg.trainer) or 1)
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.batch_size, cfg.trainer.accumulate_grad_batches = plan
    return cfg


MIN_ROWS = 10  # metrics rows a run writes at least, however short


def with_intervals_for_length(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose intervals fit a short run: a run of fewer steps than
    ``trainer.val_check_interval`` validates (and checkpoints) at its last step, and one of fewer
    than ``MIN_ROWS`` x ``trainer.log_every_n_steps`` logs every max_steps / MIN_ROWS steps, with
    the tokens/s window shortened to match; otherwise a 20-step try logs nothing at all."""
    trainer, max_steps = cfg.trainer, cfg.trainer.get("max_steps") or -1
    if max_steps <= 0:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        interval = trainer.get("val_check_interval")
        if isinstance(interval, int) and interval > max_steps:
            log.info("trainer.max_steps=%d < trainer.val_check_interval=%d: validating at the end", max_steps, interval)
            cfg.trainer.val_check_interval = max_steps
        every = max(1, max_steps // MIN_ROWS)
        if (trainer.get("log_every_n_steps") or 0) > every:
            log.info("trainer.max_steps=%d: a metrics row every %d steps", max_steps, every)
            cfg.trainer.log_every_n_steps = every
            throughput = (cfg.get("callbacks") or {}).get("throughput")
            if throughput is not None and throughput.get("window_size", 0) > max(2, every):
                throughput.window_size = max(2, every)
    return cfg


def apply_batch_plan(trainer: L.Trainer, datamodule: L.LightningDataModule, requested: DictConfig) -> None:
    """Plan ``requested``'s batch for the Trainer's own world size, which can differ from the
    config's count (devices=auto on a TPU), and hand it to the datamodule and the Trainer.
    Validation and checkpoints stay every ``trainer.val_check_interval`` optimizer steps."""
    plan = plan_from_config(requested, trainer.world_size)
    datamodule.batch_size = plan.micro_batch_size
    trainer.accumulate_grad_batches = plan.accumulate_grad_batches
    if isinstance(trainer.val_check_interval, int):  # a float is a share of an epoch
        trainer.val_check_interval *= plan.accumulate_grad_batches
    step = plan.micro_batch_size * plan.accumulate_grad_batches * trainer.world_size
    log.info(
        "Batch: %d sequences per optimizer step (global_batch_size=%s) = %d per device x %d accumulated x %d device(s)",
        step,
        requested.get("global_batch_size"),
        plan.micro_batch_size,
        plan.accumulate_grad_batches,
        trainer.world_size,
    )


def build_datamodule(cfg: DictConfig, tokenizer: Tokenizer) -> L.LightningDataModule:
    """``cfg.data``'s datamodule (its ``_target_``), batching with ``cfg.masking``."""
    return instantiate(cfg.data, tokenizer=tokenizer, masking=cfg.masking, _convert_="object")


def build_module(cfg: DictConfig, vocab_size: int) -> ElectraPretrainModule:
    """The LightningModule: ``cfg.model``'s pair trained with ``cfg.objective``, ``cfg.optimizer``
    and ``cfg.lr_schedule``, for a tokenizer of ``vocab_size`` tokens."""
    return ElectraPretrainModule(
        model=cfg.model,
        vocab_size=vocab_size,
        objective=cfg.objective,
        optimizer=cfg.optimizer,
        lr_schedule=cfg.lr_schedule,
        compile=OmegaConf.to_object(cfg.compile) if "compile" in cfg else None,
    )


def check_inputs(cfg: DictConfig) -> None:
    """What a pretraining job reads, looked at without reading it: the config's own checks, the
    corpus files (paths and globs) or shard folders, and ckpt_path. Each job of a ``-m`` sweep is
    checked so before the first one trains (electra_lit.runs.preflight)."""
    validate_config(cfg)
    if cfg.data.get("corpus") is not None:
        instantiate(cfg.data.corpus)  # resolves its paths and globs; reads nothing
    if cfg.data.get("shards") is not None:
        shard_folders(cfg.data.shards)
    if cfg.ckpt_path:
        check_ckpt_path(cfg.ckpt_path, cfg.cache_dir)
    storage.check_url(cfg.run_dir, "run_dir", must_exist=False)


def train(cfg: DictConfig) -> dict[str, float]:
    """Pretrain as ``cfg`` says; returns the final metrics (``train/loss``, ``val/disc_acc``, ...)."""
    validate_config(cfg)  # data.batch_size and the rest, before the plan does arithmetic with them
    requested, cfg = cfg, with_intervals_for_length(with_batch_plan(cfg))
    remote = open_remote(cfg)  # a URL run_dir: its lock, and its files in the local mirror
    ckpt_path, checkpoint = resume_checkpoint(cfg)
    run = begin_run(cfg)

    tokenizer = instantiate(cfg.tokenizer)
    if ckpt_path:
        tokenizer = runs_own_tokenizer(checkpoint, ckpt_path, cfg, tokenizer)
        check_fits(checkpoint, ckpt_path, cfg, tokenizer)
        del checkpoint
    datamodule = build_datamodule(cfg, tokenizer)
    module = build_module(cfg, tokenizer.get_vocab_size())
    module.tokenizer_json = tokenizer.to_str()  # checkpoints carry their tokenizer
    if cfg.init_from and not ckpt_path:
        from electra_lit.hf import load_pretrained

        init_from = cfg.init_from if isinstance(cfg.init_from, str) else OmegaConf.to_container(cfg.init_from)
        if isinstance(init_from, str):
            init_from = str(storage.fetch(init_from, cfg.cache_dir, "init_from"))
        else:
            init_from = {k: str(storage.fetch(v, cfg.cache_dir, f"init_from.{k}")) for k, v in init_from.items()}
        load_pretrained(module.generator, module.main_model, init_from, tokenizer)

    budget = cfg.budget.flops if "budget" in cfg else None
    trainer = make_trainer(cfg, run, callbacks=[FlopsBudget(budget)] if budget else [], remote=remote)
    apply_batch_plan(trainer, datamodule, requested)
    if trainer.is_global_zero:
        save_tokenizer(tokenizer, run.tokenizer)

    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        if ckpt_path and not run.last_checkpoint.exists():
            # a branch (ckpt_path=... run_dir=NEW) that trained nothing, its checkpoint being at
            # max_steps already: NEW still gets its starting point, so a longer re-run continues from it
            trainer.save_checkpoint(run.last_checkpoint)
        if trainer.is_global_zero:
            print_and_log(
                "\n".join(summary_lines(trainer, run.root, remote and remote.url))
            )  # on the console and in train.log
    finally:
        if remote is not None and trainer.is_global_zero:
            remote.push(final=True)
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
    return metrics.get("val/loss", last_logged(RunDir(cfg.local_run_dir), "val/loss"))
