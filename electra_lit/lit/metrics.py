"""torchmetrics for one stage (train or val) of pretraining."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

from electra_lit.objectives import PretrainOutput

IGNORE = -100


class PretrainMetrics(nn.Module):
    """Generator accuracy at masked positions, discriminator accuracy over real tokens, and the
    share of real tokens that were replaced (1 - replaced_frac is the accuracy of always
    answering "original", the baseline the discriminator must beat)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.gen_acc = MulticlassAccuracy(
            num_classes=vocab_size, average="micro", ignore_index=IGNORE, validate_args=False
        )
        self.disc_acc = BinaryAccuracy(ignore_index=IGNORE, validate_args=False)
        # weighted by the attention mask (not nan_strategy="disable": it drops the weights,
        # torchmetrics issue #3434)
        self.replaced_frac = MeanMetric()

    def forward(self, out: PretrainOutput) -> dict[str, torch.Tensor]:
        """Update with one batch; returns this batch's values."""
        gen_target = out.masked_ids.masked_fill(out.masked_weights == 0, IGNORE)
        disc_target = out.replaced.long().masked_fill(out.attention_mask == 0, IGNORE)
        return {
            "gen_acc": self.gen_acc(out.gen_logits.argmax(-1).flatten(), gen_target.flatten()),
            "disc_acc": self.disc_acc((out.disc_logits > 0).long(), disc_target),
            "replaced_frac": self.replaced_frac(out.replaced.float(), out.attention_mask.float()),
        }

    def items(self):
        """(name, Metric) pairs, for ``LightningModule.log``."""
        return [("gen_acc", self.gen_acc), ("disc_acc", self.disc_acc), ("replaced_frac", self.replaced_frac)]
