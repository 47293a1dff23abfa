"""BERT's masked language modelling: the baseline ELECTRA is compared with.

One model of the discriminator's size, no generator; it predicts the original token at the
masked positions. The ``mlm`` objective config also switches the masking to BERT's 80% [MASK],
10% random token, 10% kept.
"""

from __future__ import annotations

import torch

from electra_lit.models import MaskedLM
from electra_lit.objectives.common import PretrainOutput, TokenPredictions, masked_lm_loss


class MaskedLanguageModeling:
    uses_generator = False
    main_head = "mlm"

    def __call__(self, generator: None, model: MaskedLM, batch: dict[str, torch.Tensor]) -> PretrainOutput:
        positions, masked_ids, weights = batch["masked_positions"], batch["masked_ids"], batch["masked_weights"]
        logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], positions)
        mlm_loss = masked_lm_loss(logits, masked_ids, weights)
        return PretrainOutput(
            loss=mlm_loss,
            losses={"mlm_loss": mlm_loss},
            mlm=TokenPredictions(logits.detach().argmax(-1), masked_ids, weights),
        )
