"""The LightningModule of pretraining: the generator/discriminator pair and the objective's step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LambdaLR

from electra_lit.lit.callbacks.progress import PROGRESS_BAR_METRICS
from electra_lit.lit.compile import CompileConfig, clone_tensors, mark_step_begin
from electra_lit.lit.modules.metrics import PretrainMetrics
from electra_lit.models import EncoderConfig, build_models, pretraining_flops
from electra_lit.objectives import PretrainOutput
from electra_lit.optim import electra_lr_lambda, parameter_groups


def _plain(value: Mapping) -> dict:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else dict(value)


class ElectraPretrainModule(L.LightningModule):
    """Holds the generator and the discriminator and trains them with the configured objective.

    ``main_model`` is the model kept after pretraining; the objective decides what it is: ELECTRA's
    discriminator, or for the MLM objectives a masked LM of the discriminator's size.
    ``generator`` is None when the objective needs none (``mlm``).

    Args:
        model: :class:`~electra_lit.models.ModelConfig`'s fields: ``discriminator`` (its sizes),
            ``generator_fraction``, ``generator`` (explicit generator sizes or None) and
            ``embedding_sharing``.
        vocab_size: the tokenizer's vocabulary size.
        objective: ``_target_`` and arguments of the objective (e.g. ``ReplacedTokenDetection``).
        optimizer: AdamW's ``lr``, ``betas``, ``eps``, ``weight_decay``.
        lr_schedule: ``warmup_steps``; the decay ends at the trainer's ``max_steps``.
        compile: how the objective's step is compiled (:class:`~electra_lit.lit.compile.CompileConfig`);
            a setting of the run, not of the model, so not saved in checkpoints.

    The other arguments are plain values saved in every checkpoint, and so is the tokenizer (set
    ``tokenizer_json``), so ``ElectraPretrainModule.load_from_checkpoint(path)`` rebuilds
    everything without a config.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        vocab_size: int,
        objective: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        lr_schedule: Mapping[str, Any],
        compile: CompileConfig | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(
            {
                "model": _plain(model),
                "vocab_size": vocab_size,
                "objective": _plain(objective),
                "optimizer": _plain(optimizer),
                "lr_schedule": _plain(lr_schedule),
            }
        )
        model = self.hparams.model
        self.objective = instantiate(self.hparams.objective)
        self.generator, self.main_model = build_models(
            EncoderConfig(vocab_size=vocab_size, **model["discriminator"]),
            main_head=self.objective.main_head,
            with_generator=self.objective.uses_generator,
            generator_fraction=model["generator_fraction"],
            generator_sizes=model.get("generator"),
            embedding_sharing=model["embedding_sharing"],
            generator_embedding_grad=model.get("generator_embedding_grad", True),
        )
        self.train_metrics = PretrainMetrics(vocab_size)
        self.val_metrics = PretrainMetrics(vocab_size)
        self.tokenizer_json: str | None = None
        self.flops_per_batch: int | None = None  # set by setup(); ThroughputMonitor's FLOP/s and MFU
        self.compile_config = compile or CompileConfig()
        self.objective_step = self.run_objective  # compiled by setup() when compile.enabled

    def setup(self, stage: str) -> None:
        self.flops_per_batch = self.batch_flops(self.trainer.datamodule)
        strategy = self.trainer.strategy
        self.compile_config.check_runs_on(strategy.root_device, type(strategy).__name__)
        self.objective_step = self.compile_config.build(self.run_objective)

    def run_objective(self, batch: dict[str, torch.Tensor]) -> PretrainOutput:
        """The objective's forward pass and losses on one batch: what ``compile`` compiles."""
        return self.objective(self.generator, self.main_model, batch)

    def batch_flops(self, datamodule: L.LightningDataModule | None) -> int | None:
        """Training FLOPs of one batch of ``datamodule``'s shape (``batch_size`` sequences of
        ``max_seq_length`` tokens, ``collator.max_predictions`` masked slots each); None without one.
        Public for what needs the count before this module's ``setup`` (the FLOPs budget)."""
        collator = getattr(datamodule, "collator", None)
        shape = [
            getattr(datamodule, "batch_size", None),
            getattr(datamodule, "max_seq_length", None),
            getattr(collator, "max_predictions", None),
        ]
        if not all(isinstance(size, int) for size in shape):
            return None
        generator = None if self.generator is None else self.generator.encoder.config
        return pretraining_flops(self.main_model.encoder.config, generator, *shape, main_head=self.objective.main_head)

    def _step(self, batch: dict[str, torch.Tensor], stage: str, details: bool = True) -> torch.Tensor:
        """The objective on ``batch``; logs the loss, and with ``details`` its parts and metrics."""
        if self.compile_config.cuda_graphs:
            mark_step_begin()
            out = clone_tensors(self.objective_step(batch))  # the next replay overwrites the graph's outputs
        else:
            out = self.objective_step(batch)
        per_step = stage == "train"
        log = dict(on_step=per_step, on_epoch=not per_step, batch_size=batch["input_ids"].shape[0])
        self.log(f"{stage}/loss", out.loss, prog_bar=stage == "train", **log)
        if not details:
            return out.loss  # the parts and metrics of this step would reach no logger
        for name, value in out.losses.items():
            self.log(f"{stage}/{name}", value, **log)
        metrics = self.train_metrics if stage == "train" else self.val_metrics
        for name, metric in metrics(out).items():
            self.log(f"{stage}/{name}", metric, prog_bar=f"{stage}/{name}" in PROGRESS_BAR_METRICS, **log)
        return out.loss

    def _logs_this_step(self) -> bool:
        """Whether this training step's metrics are written (Lightning's rule: every
        ``trainer.log_every_n_steps``), or it is the first or last step (the progress bar and the
        closing summary show those). Other steps log only the loss: each ``self.log`` and metric
        update costs a few percent of a small model's step."""
        trainer = self.trainer
        step = trainer.global_step + 1  # this step, from 1
        return trainer._logger_connector.should_update_logs or step == 1 or step >= trainer.max_steps

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        details = self._logs_this_step()
        if details:
            self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)
        return self._step(batch, "train", details)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.tokenizer_json is not None:
            checkpoint["tokenizer_json"] = self.tokenizer_json

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokenizer_json = checkpoint.get("tokenizer_json")

    def configure_optimizers(self):
        from electra_lit.adamw import make_adamw

        opt = self.hparams.optimizer
        scale = opt.get("generator_lr_scale", 1.0)  # checkpoints older than the key lack it
        # scale 1: no groups of the generator's own, the optimizer state's layout of older checkpoints
        groups = parameter_groups(self, opt["weight_decay"], self.generator, opt["lr"] * scale if scale != 1 else None)
        optimizer = make_adamw(
            groups,
            lr=opt["lr"],
            betas=opt["betas"],
            eps=opt["eps"],
            bias_correction=opt.get("bias_correction", True),
            fused=True if self.device.type == "cuda" else None,
        )
        # LambdaLR multiplies each group's own lr (its initial_lr), so the generator keeps its scale
        schedule = LambdaLR(
            optimizer, electra_lr_lambda(self.trainer.max_steps, self.hparams.lr_schedule["warmup_steps"])
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
