"""The LightningModule of fine-tuning: an ELECTRA encoder, dropout and one linear layer on [CLS].

Classification (cross-entropy over the task's classes) or regression (one output, mean squared
error, e.g. STS-B; the model learns label x ``target_scale`` and its predictions are divided back,
so metrics and submission files are in the labels' units). Layer-wise LR decay, ELECTRA's
released LR curve (or warmup then decay) and weight decay off LayerNorm and biases, as ELECTRA's
released code fine-tunes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MetricCollection, PearsonCorrCoef, SpearmanCorrCoef
from torchmetrics.classification import BinaryF1Score, MatthewsCorrCoef, MulticlassAccuracy

from electra_lit.models import Encoder, EncoderConfig, init_weights
from electra_lit.optim import check_lr_curve, electra_lr_lambda, layerwise_lr_groups

TASK_METRICS = ("accuracy", "f1", "mcc", "spearman", "pearson")


def task_metrics(names: Sequence[str], num_labels: int) -> MetricCollection:
    """GLUE's metrics: accuracy, F1 of the positive class, Matthews correlation, Spearman, Pearson."""
    makers = {
        "accuracy": lambda: MulticlassAccuracy(num_classes=max(num_labels, 2), average="micro"),
        "f1": BinaryF1Score,
        "mcc": lambda: MatthewsCorrCoef(task="multiclass", num_classes=max(num_labels, 2)),
        "spearman": SpearmanCorrCoef,
        "pearson": PearsonCorrCoef,
    }
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"task metric {unknown[0]!r} is not one of {', '.join(TASK_METRICS)}")
    return MetricCollection({name: makers[name]() for name in names})


def warmup_then_linear_decay(total_steps: int, warmup_fraction: float):
    warmup = max(1, round(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def finetune_lr_lambda(curve: str, total_steps: int, warmup_fraction: float):
    """The LR multiplier at step t of ``optimizer.lr_curve``. ``released``: (1 - t/T) * min(1, t/w)
    with w = int(T * warmup_fraction), ELECTRA's fine-tuning code (the curve pretraining uses), so
    the peak stays below lr; ``sequential``: up to lr over the warmup, then down to 0."""
    check_lr_curve(curve)
    if curve == "released":
        return electra_lr_lambda(total_steps, int(total_steps * warmup_fraction))
    return warmup_then_linear_decay(total_steps, warmup_fraction)


class ElectraClassifierModule(L.LightningModule):
    """Fine-tunes an encoder on one task.

    Args:
        encoder: :class:`EncoderConfig` fields of the pretrained encoder.
        num_labels: classes, or 1 for regression.
        metrics: names from ``TASK_METRICS``, computed on every validation split.
        validation_suffixes: one per validation split; metric names get ``_suffix``
            (MNLI: ``["", "mm"]`` gives ``val/accuracy`` and ``val/accuracy_mm``).
        classifier_dropout: dropout before the linear layer.
        optimizer: ``lr``, ``layerwise_lr_decay``, ``layer_decay_rule``, ``warmup_fraction``,
            ``lr_curve``, ``weight_decay``, ``betas``, ``eps``.
        target_scale: regression only: the loss compares the output with label x target_scale,
            and predictions are output / target_scale (STS-B: 0.2, targets in [0, 1]).
    """

    def __init__(
        self,
        encoder: Mapping[str, Any],
        num_labels: int,
        metrics: Sequence[str],
        validation_suffixes: Sequence[str] = ("",),
        classifier_dropout: float = 0.1,
        optimizer: Mapping[str, Any] | None = None,
        target_scale: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        config = EncoderConfig(**encoder)
        self.encoder = Encoder(config)
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_weights(self.classifier, std=config.initializer_range)
        self.val_metrics = nn.ModuleList(task_metrics(metrics, num_labels) for _ in validation_suffixes)
        self.history: list[dict[str, float]] = []  # dev metrics of each epoch

    @property
    def regression(self) -> bool:
        return self.hparams.num_labels == 1

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        logits = self.classifier(self.dropout(hidden[:, 0]))
        return logits.squeeze(-1) if self.regression else logits

    def _loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return F.mse_loss(outputs.float(), labels * self.hparams.target_scale)
        return F.cross_entropy(outputs.float(), labels)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class indices, or regression outputs in the labels' units (the learnt scale undone)."""
        return outputs.float() / self.hparams.target_scale if self.regression else outputs.argmax(-1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        outputs = self(batch)
        self.val_metrics[dataloader_idx].update(self.predictions(outputs), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values: dict[str, float] = {}
        for suffix, metrics in zip(self.hparams.validation_suffixes, self.val_metrics):
            for name, value in metrics.compute().items():
                values[f"{name}_{suffix}" if suffix else name] = float(value)
            metrics.reset()
        for name, value in values.items():
            self.log(f"val/{name}", value, prog_bar=True)
        if not self.trainer.sanity_checking:
            self.history.append({"epoch": self.current_epoch, **values})

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.predictions(self(batch))

    def configure_optimizers(self):
        opt = dict(self.hparams.optimizer or {})
        groups = layerwise_lr_groups(
            self.encoder,
            nn.ModuleList([self.classifier]),
            opt["lr"],
            opt["layerwise_lr_decay"],
            opt.get("layer_decay_rule", "released"),
            opt.get("weight_decay", 0.01),
        )
        optimizer = torch.optim.AdamW(groups, betas=tuple(opt.get("betas", (0.9, 0.999))), eps=opt.get("eps", 1e-6))
        curve = finetune_lr_lambda(
            opt.get("lr_curve", "released"),
            int(self.trainer.estimated_stepping_batches),
            opt.get("warmup_fraction", 0.1),
        )
        schedule = LambdaLR(optimizer, curve)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
