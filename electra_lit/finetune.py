"""``electra-finetune``: fine-tune a pretrained encoder on a task and record its dev results.

``finetune(cfg)`` trains for the task's epochs, validates after each, keeps the best epoch by the
task's main metric, writes ``run_dir/results.json`` (task, dev metrics of the best epoch, best
epoch, every epoch's metrics) and, when the source has test files, ``run_dir/predictions/`` in
GLUE's submission format from the best checkpoint.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

import electra_lit.train  # noqa: F401  registers the ${run_name:...} resolver and quiets known warnings
from electra_lit.config_checks import check_group_choices
from electra_lit.console import hide_lightning_tips, print_config_tree
from electra_lit.data.glue import Task
from electra_lit.data.task_datamodule import TaskDataModule
from electra_lit.encoders import load_pretrained_encoder
from electra_lit.errors import ConfigError, one_line_errors
from electra_lit.lit.classifier import ElectraClassifierModule

log = logging.getLogger(__name__)


def paper_optimizer(optimizer: dict, hidden_size: int) -> dict:
    """Fill ``lr`` and ``layerwise_lr_decay`` left null with the paper's values for this width."""
    large, base = hidden_size >= 1024, hidden_size >= 768
    if optimizer.get("lr") is None:
        optimizer["lr"] = 5e-5 if large else 1e-4 if base else 3e-4
    if optimizer.get("layerwise_lr_decay") is None:
        optimizer["layerwise_lr_decay"] = 0.9 if large else 0.8
    return optimizer


def write_predictions(directory: Path, task: Task, datamodule: TaskDataModule, predictions: list[list[torch.Tensor]]) -> list[Path]:
    """GLUE's submission files: ``index<TAB>prediction`` with class names (or scores)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for split, rows, batches in zip(datamodule.test_splits, datamodule.test_sets, predictions):
        values = torch.cat(batches).tolist()
        path = directory / f"{split.submission or split.name}.tsv"
        with open(path, "w", encoding="utf-8") as f:
            f.write("index\tprediction\n")
            for row, value in zip(rows, values):
                f.write(f"{row['index']}\t{task.labels[value] if task.labels else round(value, 4)}\n")
        written.append(path)
    return written


def finetune(cfg: DictConfig) -> dict:
    """Fine-tune as ``cfg`` says; returns what results.json holds."""
    if OmegaConf.is_missing(cfg, "init_from"):
        raise ConfigError("init_from is required: an electra-pretrain .ckpt (e.g. "
                          "runs/pretrain/default/checkpoints/last.ckpt) or a transformers folder")
    if cfg.print_config:
        print_config_tree(cfg)
    run_dir = Path(cfg.run_dir)
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    task = Task.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    pretrained = load_pretrained_encoder(cfg.init_from, cfg.tokenizer_vocab)
    if cfg.max_seq_length > pretrained.encoder.config.max_position_embeddings:
        raise ConfigError(f"max_seq_length={cfg.max_seq_length} is above the encoder's "
                          f"{pretrained.encoder.config.max_position_embeddings} positions")
    data_dir = cfg.task.data_dir or (str(Path(cfg.glue_dir) / cfg.task.glue_folder) if cfg.glue_dir else None)
    datamodule = TaskDataModule(
        task, pretrained.tokenizer, data_dir=data_dir,
        files=OmegaConf.to_container(cfg.task.files) if cfg.task.files else None,
        max_seq_length=cfg.max_seq_length, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed,
    )
    datamodule.setup("fit")  # bad data fails here, before any training
    module = ElectraClassifierModule(
        encoder=asdict(pretrained.encoder.config), num_labels=task.num_labels, metrics=task.metrics,
        validation_suffixes=[split.suffix for split in task.validation], classifier_dropout=cfg.classifier_dropout,
        optimizer=paper_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), pretrained.encoder.config.hidden_size),
    )
    module.encoder.load_state_dict(pretrained.encoder.state_dict())

    best = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=f"val/{task.metric}",
                           mode="max", save_top_k=1, enable_version_counter=False)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    hide_lightning_tips()
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[best])
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    trainer.fit(module, datamodule=datamodule)

    best_epoch = max(module.history, key=lambda epoch: epoch[task.metric])
    results = {
        "task": task.name,
        "metric": task.metric,
        "metrics": {name: value for name, value in best_epoch.items() if name != "epoch"},
        "best_epoch": best_epoch["epoch"],
        "init_from": str(cfg.init_from),
        "seed": cfg.seed,
        "epochs": module.history,
    }
    if datamodule.test_splits and best.best_model_path:
        best_module = ElectraClassifierModule.load_from_checkpoint(best.best_model_path, weights_only=False)
        predictions = trainer.predict(best_module, dataloaders=datamodule.test_dataloaders())
        if len(datamodule.test_splits) == 1:
            predictions = [predictions]
        results["predictions"] = [str(p) for p in write_predictions(run_dir / "predictions", task, datamodule, predictions)]
    if trainer.is_global_zero:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))
        scores = ", ".join(f"{name} {value:.4f}" for name, value in results["metrics"].items())
        print(f"\n{task.name}: best epoch {results['best_epoch']}: {scores}\n  results  {run_dir / 'results.json'}", flush=True)
    return results


@hydra.main(version_base="1.3", config_path="pkg://electra_lit.conf", config_name="finetune")
def _hydra_main(cfg: DictConfig) -> float:
    with one_line_errors("electra-finetune"):
        results = finetune(cfg)
    return results["metrics"][results["metric"]]  # the value a Hydra sweeper optimises


def main() -> None:
    """Console script: check group options first (one-line error), then hand over to Hydra."""
    with one_line_errors("electra-finetune"):
        check_group_choices(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
