"""A fine-tuning run: fine-tune a pretrained encoder on a task and record its dev results.

``finetune(cfg)`` trains for the task's epochs, validates after each, keeps the best epoch by the
task's main metric, writes ``run_dir/results.json`` (task, main and averaged metric names, dev
metrics of the best epoch, best epoch, every epoch's metrics) and, when the source has test
files, ``run_dir/predictions/`` in GLUE's submission format from the best checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from electra_lit import storage
from electra_lit.data.tasks.datamodule import TaskDataModule
from electra_lit.data.tasks.glue import Task, split_file
from electra_lit.errors import ConfigError
from electra_lit.lit.modules.classifier import ElectraClassifierModule
from electra_lit.pretrained import check_init_from, load_pretrained_encoder
from electra_lit.runs.remote import open_remote
from electra_lit.runs.run_dir import RunDir
from electra_lit.runs.setup import begin_run, make_trainer

log = logging.getLogger(__name__)


def paper_optimizer(optimizer: dict, hidden_size: int) -> dict:
    """Fill ``lr`` and ``layerwise_lr_decay`` left null with the paper's values for this width."""
    large, base, small = hidden_size >= 1024, hidden_size >= 768, hidden_size >= 256
    if optimizer.get("lr") is None:
        # the paper's Large/Base/Small rates; narrower than Small (electra-tiny) 2e-3, measured on
        # austen_novel (docs/finetuning.md): 3e-4 leaves a 128-wide encoder far from converged
        optimizer["lr"] = 5e-5 if large else 1e-4 if base else 3e-4 if small else 2e-3
    if optimizer.get("layerwise_lr_decay") is None:
        optimizer["layerwise_lr_decay"] = 0.9 if large else 0.8
    return optimizer


def write_predictions(
    directory: Path, task: Task, datamodule: TaskDataModule, predictions: list[list[torch.Tensor]]
) -> list[Path]:
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


def task_sources(cfg: DictConfig) -> tuple[str | None, dict[str, str] | None]:
    """Where the task's examples are: a folder in GLUE's layout (``task.data_dir``, or the task's
    folder in ``glue_dir``), else ``task.files``; neither = the datasets hub."""
    data_dir = cfg.task.data_dir or (
        str(Path(cfg.glue_dir) / cfg.task.glue_folder) if cfg.glue_dir and cfg.task.glue_folder else None
    )
    return data_dir, (OmegaConf.to_container(cfg.task.files) if cfg.task.files else None)


def check_inputs(cfg: DictConfig) -> None:
    """What a fine-tuning job reads, looked at without reading it: init_from, and the training and
    dev files of the task. Each job of a ``-m`` sweep is checked so before the first one runs."""
    if OmegaConf.is_missing(cfg, "init_from"):
        raise ConfigError(
            "init_from is required: an electra-pretrain .ckpt (e.g. "
            f"{RunDir('runs/pretrain/default').last_checkpoint}) or a transformers folder"
        )
    check_init_from(cfg.init_from, cfg.cache_dir)
    storage.check_url(cfg.run_dir, "run_dir", must_exist=False)
    task = Task.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    data_dir, files = task_sources(cfg)
    for split in [task.train, *(s.name for s in task.validation)]:
        split_file(task, split, data_dir, files)


def finetune(cfg: DictConfig) -> dict:
    """Fine-tune as ``cfg`` says; returns what results.json holds."""
    check_inputs(cfg)
    remote = open_remote(cfg)  # a URL run_dir: its lock, and its files in the local mirror
    run = begin_run(cfg)
    task = Task.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    pretrained = load_pretrained_encoder(cfg.init_from, cfg.tokenizer_vocab, cfg.cache_dir)
    if cfg.max_seq_length > pretrained.encoder.config.max_position_embeddings:
        raise ConfigError(
            f"max_seq_length={cfg.max_seq_length} is above the encoder's "
            f"{pretrained.encoder.config.max_position_embeddings} positions"
        )
    data_dir, files = task_sources(cfg)
    datamodule = TaskDataModule(
        task,
        pretrained.tokenizer,
        data_dir=data_dir,
        files=files,
        max_seq_length=cfg.max_seq_length,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
    )
    datamodule.setup("fit")  # bad data fails here, before any training
    module = ElectraClassifierModule(
        encoder=asdict(pretrained.encoder.config),
        num_labels=task.num_labels,
        metrics=task.metrics,
        validation_suffixes=[split.suffix for split in task.validation],
        classifier_dropout=cfg.classifier_dropout,
        optimizer=paper_optimizer(
            OmegaConf.to_container(cfg.optimizer, resolve=True), pretrained.encoder.config.hidden_size
        ),
        target_scale=task.target_scale,
    )
    module.encoder.load_state_dict(pretrained.encoder.state_dict())

    best = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename=run.best_checkpoint.stem,
        monitor=f"val/{task.metric}",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    trainer = make_trainer(cfg, run, callbacks=[best], remote=remote)
    try:
        return _fit_and_report(cfg, trainer, module, datamodule, task, best, run)
    finally:
        if remote is not None and trainer.is_global_zero:
            remote.push(final=True)


def _fit_and_report(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: ElectraClassifierModule,
    datamodule: TaskDataModule,
    task: Task,
    best: ModelCheckpoint,
    run: RunDir,
) -> dict:
    """Train, then write results.json (and GLUE predictions) from the best epoch."""
    trainer.fit(module, datamodule=datamodule)

    best_epoch = max(module.history, key=lambda epoch: epoch[task.metric])
    results = {
        "task": task.name,
        "metric": task.metric,
        "average_metric": task.averaged,  # what electra-glue-table averages (MRPC, QQP: accuracy)
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
        results["predictions"] = [str(p) for p in write_predictions(run.predictions, task, datamodule, predictions)]
    if trainer.is_global_zero:
        run.results.write_text(json.dumps(results, indent=2))
        scores = ", ".join(f"{name} {value:.4f}" for name, value in results["metrics"].items())
        print(f"\n{task.name}: best epoch {results['best_epoch']}: {scores}\n  results  {run.results}", flush=True)
    return results


def sweep_objective(cfg: DictConfig) -> float:
    """Fine-tune, and return what a Hydra sweeper optimises: the task's main dev metric."""
    results = finetune(cfg)
    return results["metrics"][results["metric"]]
