"""Replaced token detection (RTD), ELECTRA's objective, and its "ELECTRA 15%" ablation.

1. The generator predicts the original token at each masked position (cross-entropy, gen_loss).
2. A replacement is sampled from its distribution with Gumbel-max, in fp32, without gradient
   (``disallow_correct``: never the original token; ``sampler=uniform``: uniform over the
   vocabulary and no generator, the released code's ``uniform_generator`` ablation).
3. The discriminator sees the original sequence with the samples written in, and labels every
   real token original (0) or replaced (1); a sample equal to the original counts as original.
4. loss = gen_loss + disc_weight * disc_loss, disc_loss the binary cross-entropy over all real
   tokens ([CLS] and [SEP] included), or only over the masked positions (``masked_only``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from electra_lit.errors import ConfigError
from electra_lit.models import Discriminator, MaskedLM
from electra_lit.objectives.common import Detections, PretrainOutput, Sampling, corrupt, weighted_mean


class ReplacedTokenDetection:
    """ELECTRA. ``disc_weight`` is the paper's lambda (50), ``temperature`` the sampling one;
    ``masked_only=True`` is the "ELECTRA 15%" ablation (discriminator loss at masked positions);
    ``sampler`` and ``disallow_correct``: see :class:`~electra_lit.objectives.common.Sampling`."""

    main_head = "rtd"

    def __init__(
        self,
        disc_weight: float = 50.0,
        temperature: float = 1.0,
        masked_only: bool = False,
        sampler: str = "generator",
        disallow_correct: bool = False,
    ):
        if disc_weight < 0:
            raise ConfigError(f"objective.disc_weight={disc_weight} must be >= 0")
        self.sampling = Sampling(sampler, temperature, disallow_correct)
        self.disc_weight = disc_weight
        self.temperature = temperature
        self.masked_only = masked_only
        self.uses_generator = self.sampling.uses_generator  # the uniform sampler needs none

    def __call__(
        self, generator: MaskedLM, discriminator: Discriminator, batch: dict[str, torch.Tensor]
    ) -> PretrainOutput:
        corruption = corrupt(self.sampling, generator, discriminator, batch)
        attention_mask = batch["attention_mask"]
        logits = discriminator(corruption.input_ids, batch["token_type_ids"], attention_mask)
        bce = F.binary_cross_entropy_with_logits(logits.float(), corruption.replaced.float(), reduction="none")
        if self.masked_only:
            weights = torch.zeros_like(bce).scatter(1, batch["masked_positions"], batch["masked_weights"])
        else:
            weights = attention_mask
        disc_loss = weighted_mean(bce, weights)
        return PretrainOutput(
            loss=corruption.gen_loss + self.disc_weight * disc_loss,
            losses={"gen_loss": corruption.gen_loss, "disc_loss": disc_loss},
            gen=corruption.gen,
            disc=Detections(logits.detach(), corruption.replaced, weights),
        )
