"""torchmetrics for one stage (train or val) of pretraining, for whichever objective runs.

- ``gen_acc``: the generator's accuracy at the masked positions;
- ``mlm_acc``: the main model's accuracy, for MLM objectives;
- ``disc_acc``: the discriminator's accuracy over real tokens, and ``replaced_frac``, the share
  of real tokens replaced: 1 - replaced_frac is the accuracy of always answering "original",
  the baseline a discriminator must beat.
"""

from __future__ import annotations

from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

from electra_lit.objectives import PretrainOutput, TokenPredictions

IGNORE = -100


class PretrainMetrics(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()

        def token_accuracy() -> MulticlassAccuracy:
            return MulticlassAccuracy(num_classes=vocab_size, average="micro", ignore_index=IGNORE, validate_args=False)

        self.gen_acc = token_accuracy()
        self.mlm_acc = token_accuracy()
        self.disc_acc = BinaryAccuracy(ignore_index=IGNORE, validate_args=False)
        # weighted by the attention mask (not nan_strategy="disable": it drops the weights,
        # torchmetrics issue #3434)
        self.replaced_frac = MeanMetric()

    @staticmethod
    def _update_tokens(metric: MulticlassAccuracy, predictions: TokenPredictions) -> None:
        target = predictions.target.masked_fill(predictions.weights == 0, IGNORE)
        metric(predictions.predicted.flatten(), target.flatten())

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
            d = out.disc
            self.disc_acc((d.logits > 0).long(), d.replaced.long().masked_fill(d.attention_mask == 0, IGNORE))
            self.replaced_frac(d.replaced.float(), d.attention_mask.float())
            updated["disc_acc"], updated["replaced_frac"] = self.disc_acc, self.replaced_frac
        return updated
