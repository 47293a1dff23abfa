"""``electra-pretrain``: the Hydra entry point. ``train(cfg)`` builds a run from config and fits it.

Everything a run writes goes to ``cfg.run_dir``; if that folder holds ``checkpoints/last.ckpt``
the run resumes from it (global step, optimizer, LR schedule and data position).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import sys
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from electra_lit.config_checks import check_group_choices, check_trainer_runs_here, validate_config
from electra_lit.console import hide_lightning_tips, print_config_tree
from electra_lit.data.tokenizer import save_tokenizer
from electra_lit.errors import ConfigError, one_line_errors
from electra_lit.lit.summary import summary_lines
from electra_lit.lit.wandb import log_config  # also registers the ${wandb_sweep_group:} resolver
from electra_lit.resume import check_fits, resume_checkpoint

log = logging.getLogger(__name__)

# Deprecation notices from inside torchdata and Lightning that a user cannot act on.
warnings.filterwarnings("ignore", message=r".*'set_vital' is deprecated")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Streaming datasets define __len__ on purpose (a nominal length stops Lightning from prefetching
# past the checkpointed position); each worker reads its own part, so the warning does not apply.
warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined")


MAX_RUN_NAME = 120


def run_name(override_dirname: str) -> str:
    """A run folder name from the command-line overrides ("default" when there are none).

    Long names keep a readable prefix and end in a hash of the whole, so they stay unique,
    stable across re-runs (which must find their checkpoint) and under the 255-byte file name limit.
    """
    name = override_dirname.replace("/", "_") or "default"
    if len(name) > MAX_RUN_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: MAX_RUN_NAME - 11]}-{digest}"
    return name


OmegaConf.register_new_resolver("run_name", run_name, replace=True)


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
    check_trainer_runs_here(cfg.trainer)
    if cfg.print_config:
        print_config_tree(cfg)
    ckpt_path, checkpoint = resume_checkpoint(cfg)
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

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
        load_pretrained(module.generator, module.discriminator, init_from)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    hide_lightning_tips()
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    if cfg.batch_tokens:
        accumulate_for_batch_tokens(trainer, cfg)

    run_dir = Path(cfg.run_dir)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        save_tokenizer(tokenizer, run_dir / "tokenizer")
        log_config(loggers, OmegaConf.to_container(cfg, resolve=True))

    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.is_global_zero:
        print("\n".join(summary_lines(trainer, run_dir)), flush=True)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def last_logged(run_dir: Path, metric: str) -> float | None:
    """The last value of ``metric`` in the run's metrics.csv: what a re-run of a finished run
    (which trains nothing) reports, so that a repeated sweep still sees every job's result."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    values = [row[metric] for row in csv.DictReader(path.open()) if row.get(metric)]
    return float(values[-1]) if values else None


@hydra.main(version_base="1.3", config_path="pkg://electra_lit.conf", config_name="pretrain")
def _hydra_main(cfg: DictConfig) -> float | None:
    with one_line_errors("electra-pretrain"):
        metrics = train(cfg)
    return metrics.get("val/loss", last_logged(Path(cfg.run_dir), "val/loss"))  # what a Hydra sweeper optimises


def main() -> None:
    """Console script: check group options first (one-line error), then hand over to Hydra."""
    with one_line_errors("electra-pretrain"):
        check_group_choices(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
