"""torchmetrics for one stage (train or val) of pretraining, for whichever objective runs.

- ``gen_acc``: the generator's accuracy at the masked positions;
- ``mlm_acc``: the main model's accuracy, for MLM objectives;
- the discriminator's, over the tokens its loss judges (every real token; the masked positions
  only for ELECTRA 15%), "replaced" being the positive class:
  - ``disc_auc``: area under the ROC curve. 0.5 is chance, whatever the share of replacements;
  - ``disc_gain``: 1 - BCE / H(prior), the share of the constant predictor's loss the
    discriminator removes (0 = no better than always answering the replaced share, 1 = perfect);
  - ``disc_precision``, ``disc_recall``, ``disc_f1`` of "replaced" at threshold 0.5;
  - ``disc_acc`` and ``replaced_frac``, the share of judged tokens replaced: 1 - replaced_frac is
    the accuracy of always answering "original". With ~85% originals accuracy hides progress
    (a discriminator at AUC 0.77 still flags almost nothing above 0.5), hence AUC and gain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    MulticlassAccuracy,
)

from electra_lit.objectives import Detections, PretrainOutput, TokenPredictions

IGNORE = -100
AUC_THRESHOLDS = 200  # binned ROC: constant memory however many tokens an epoch sees


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) in nats: the BCE of a constant predictor that answers p."""
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


class DetectionGain(Metric):
    """1 - BCE / H(prior): the share of the constant predictor's loss the discriminator removes.

    Both the BCE and the prior (the share of replaced tokens) are pooled over every real token
    seen since the last reset, so the gain of an epoch is not a mean of per-batch gains."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("bce", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("replaced", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, replaced: torch.Tensor, weights: torch.Tensor) -> None:
        weights = weights.double()
        bce = F.binary_cross_entropy_with_logits(logits.float(), replaced.float(), reduction="none")
        self.bce += (bce.double() * weights).sum()
        self.replaced += (replaced.double() * weights).sum()
        self.tokens += weights.sum()

    def compute(self) -> torch.Tensor:
        tokens = self.tokens.clamp_min(1.0)
        prior_loss = binary_entropy(self.replaced / tokens)
        if prior_loss < 1e-6:  # nothing (or everything) replaced: no uncertainty to remove
            return torch.tensor(math.nan)
        return (1 - (self.bce / tokens) / prior_loss).float()


class PretrainMetrics(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()

        def token_accuracy() -> MulticlassAccuracy:
            return MulticlassAccuracy(num_classes=vocab_size, average="micro", ignore_index=IGNORE, validate_args=False)

        self.gen_acc = token_accuracy()
        self.mlm_acc = token_accuracy()
        binary = dict(ignore_index=IGNORE, validate_args=False)
        self.disc_auc = BinaryAUROC(thresholds=AUC_THRESHOLDS, **binary)
        self.disc_gain = DetectionGain()
        self.disc_precision = BinaryPrecision(**binary)
        self.disc_recall = BinaryRecall(**binary)
        self.disc_f1 = BinaryF1Score(**binary)
        self.disc_acc = BinaryAccuracy(**binary)
        # weighted by the attention mask (not nan_strategy="disable": it drops the weights,
        # torchmetrics issue #3434)
        self.replaced_frac = MeanMetric()

    @staticmethod
    def _update_tokens(metric: MulticlassAccuracy, predictions: TokenPredictions) -> None:
        target = predictions.target.masked_fill(predictions.weights == 0, IGNORE)
        metric(predictions.predicted.flatten(), target.flatten())

    def _update_detections(self, d: Detections) -> dict[str, Metric]:
        probs = torch.sigmoid(d.logits.float())  # (B, S)
        target = d.replaced.long().masked_fill(d.judged == 0, IGNORE)  # padding (and what the loss skips) ignored
        metrics = {
            "disc_auc": self.disc_auc,
            "disc_precision": self.disc_precision,
            "disc_recall": self.disc_recall,
            "disc_f1": self.disc_f1,
            "disc_acc": self.disc_acc,
        }
        for metric in metrics.values():
            metric(probs, target)
        self.disc_gain(d.logits, d.replaced, d.judged)
        self.replaced_frac(d.replaced.float(), d.judged.float())
        return {**metrics, "disc_gain": self.disc_gain, "replaced_frac": self.replaced_frac}

    def forward(self, out: PretrainOutput) -> dict[str, Metric]:
        """Update with one batch; returns the metrics this objective updated, by name."""
        updated: dict[str, Metric] = {}
        if out.gen is not None:
            self._update_tokens(self.gen_acc, out.gen)
            updated["gen_acc"] = self.gen_acc
        if out.mlm is not None:
            self._update_tokens(self.mlm_acc, out.mlm)
            updated["mlm_acc"] = self.mlm_acc
        if out.disc is not None:
            updated.update(self._update_detections(out.disc))
        return updated
