"""Replaced token detection (RTD), ELECTRA's pretraining objective.

1. The generator predicts the original token at each masked position (cross-entropy, L_gen).
2. A replacement is sampled from its distribution with Gumbel-max, in fp32, without gradient.
3. The discriminator sees the original sequence with the samples written in, and labels every
   real token original (0) or replaced (1); a sample equal to the original counts as original.
4. loss = L_gen + disc_weight * L_disc, with L_disc the binary cross-entropy over real tokens.

The batch is the :class:`~electra_lit.data.masking.MaskingCollator` layout: every tensor has a
fixed shape, and prediction slots beyond a sequence's count have weight 0 (they point at
position 0 and carry that position's own token, so writing them back changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from electra_lit.models import Discriminator, Generator


@dataclass
class PretrainOutput:
    """Losses and what the metrics need, all with static shapes (B batch, S seq, P predictions)."""

    loss: torch.Tensor  # scalar, what the optimizer minimises
    gen_loss: torch.Tensor  # scalar
    disc_loss: torch.Tensor  # scalar
    gen_logits: torch.Tensor  # (B, P, vocab)
    masked_ids: torch.Tensor  # (B, P) the original tokens at the masked positions
    masked_weights: torch.Tensor  # (B, P) 1.0 for a real prediction, 0.0 for a padding slot
    disc_logits: torch.Tensor  # (B, S)
    replaced: torch.Tensor  # (B, S) bool, the discriminator's labels
    attention_mask: torch.Tensor  # (B, S) 1 for real tokens


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), as argmax(logits / T + Gumbel noise), in fp32."""
    logits = logits.float() / temperature
    uniform = torch.rand_like(logits).clamp_min_(torch.finfo(torch.float32).tiny)
    return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights), 0 when all weights are 0 (no host sync)."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1e-6)


class ReplacedTokenDetection:
    """ELECTRA's objective. ``disc_weight`` is the paper's lambda (50), ``temperature`` the sampling one."""

    def __init__(self, disc_weight: float = 50.0, temperature: float = 1.0):
        if disc_weight < 0:
            raise ValueError(f"disc_weight={disc_weight} must be >= 0")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        self.disc_weight = disc_weight
        self.temperature = temperature

    def __call__(
        self, generator: Generator, discriminator: Discriminator, batch: dict[str, torch.Tensor]
    ) -> PretrainOutput:
        input_ids = batch["input_ids"]
        token_type_ids = batch["token_type_ids"]
        attention_mask = batch["attention_mask"]
        positions = batch["masked_positions"]
        masked_ids = batch["masked_ids"]
        weights = batch["masked_weights"]

        gen_logits = generator(input_ids, token_type_ids, attention_mask, positions)
        token_losses = F.cross_entropy(
            gen_logits.float().flatten(0, 1), masked_ids.flatten(), reduction="none"
        )
        gen_loss = weighted_mean(token_losses, weights.flatten())

        sampled = gumbel_sample(gen_logits, self.temperature)
        sampled = torch.where(weights > 0, sampled, masked_ids)  # padding slots keep their token
        disc_input = input_ids.scatter(1, positions, sampled)
        replaced = torch.zeros_like(input_ids, dtype=torch.bool).scatter(1, positions, sampled != masked_ids)

        disc_logits = discriminator(disc_input, token_type_ids, attention_mask)
        bce = F.binary_cross_entropy_with_logits(
            disc_logits.float(), replaced.float(), reduction="none"
        )
        disc_loss = weighted_mean(bce, attention_mask)

        return PretrainOutput(
            loss=gen_loss + self.disc_weight * disc_loss,
            gen_loss=gen_loss,
            disc_loss=disc_loss,
            gen_logits=gen_logits,
            masked_ids=masked_ids,
            masked_weights=weights,
            disc_logits=disc_logits,
            replaced=replaced,
            attention_mask=attention_mask,
        )
