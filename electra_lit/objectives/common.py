"""What the pretraining objectives share: the output they return, the generator step that
builds the corrupted input, and weighted losses without host syncs.

Batches follow the :class:`~electra_lit.data.pretraining.masking.MaskingCollator` layout: every tensor has a
fixed shape, and prediction slots beyond a sequence's count have weight 0 (they point at
position 0 and carry that position's own token, so writing them back changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from electra_lit.models import MaskedLM


@dataclass
class TokenPredictions:
    """Predicted and true token ids with weights (1.0 counts, 0.0 ignored), any equal shapes."""

    predicted: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor


@dataclass
class Detections:
    """The discriminator's per-token logits and labels (B, S); ``attention_mask`` marks real tokens."""

    logits: torch.Tensor
    replaced: torch.Tensor
    attention_mask: torch.Tensor


@dataclass
class PretrainOutput:
    """``loss`` to minimise, its named parts (logged as ``<stage>/<name>``), and what the metrics
    need: generator predictions (``gen``), the main model's MLM predictions (``mlm``) or its
    replaced-token detections (``disc``); ``None`` where an objective has no such part."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    gen: TokenPredictions | None = None
    mlm: TokenPredictions | None = None
    disc: Detections | None = None


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights), 0 when all weights are 0 (no host sync)."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1e-6)


def masked_lm_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in fp32, averaged over the weighted positions."""
    losses = F.cross_entropy(logits.float().flatten(0, -2), target.flatten(), reduction="none")
    return weighted_mean(losses, weights.flatten())


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), as argmax(logits / T + Gumbel noise), in fp32."""
    logits = logits.float() / temperature
    uniform = torch.rand_like(logits).clamp_min_(torch.finfo(torch.float32).tiny)
    return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)


@dataclass
class Corruption:
    """The generator's step: its loss and predictions, and the input with its samples written in."""

    gen_loss: torch.Tensor
    gen: TokenPredictions
    input_ids: torch.Tensor  # the original tokens with the samples at the masked positions
    replaced: torch.Tensor  # (B, S) bool: a sample that equals the original is not replaced


def corrupt_with_generator(generator: MaskedLM, batch: dict[str, torch.Tensor], temperature: float) -> Corruption:
    """Run the generator at the masked positions and write its samples (no gradient) into the input."""
    positions, masked_ids, weights = batch["masked_positions"], batch["masked_ids"], batch["masked_weights"]
    logits = generator(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], positions)
    sampled = gumbel_sample(logits, temperature)
    sampled = torch.where(weights > 0, sampled, masked_ids)  # unused slots keep their token
    replaced = torch.zeros_like(batch["input_ids"], dtype=torch.bool).scatter(1, positions, sampled != masked_ids)
    return Corruption(
        gen_loss=masked_lm_loss(logits, masked_ids, weights),
        gen=TokenPredictions(logits.detach().argmax(-1), masked_ids, weights),
        input_ids=batch["input_ids"].scatter(1, positions, sampled),
        replaced=replaced,
    )
