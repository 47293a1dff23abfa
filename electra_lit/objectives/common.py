"""What the pretraining objectives share: the output they return, the generator step that
builds the corrupted input, and weighted losses without host syncs.

Batches follow the :class:`~electra_lit.data.pretraining.masking.MaskingCollator` layout: every tensor has a
fixed shape, and prediction slots beyond a sequence's count have weight 0 (they point at
position 0 and carry that position's own token, so writing them back changes nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from electra_lit.errors import ConfigError
from electra_lit.models import MaskedLM


@dataclass
class TokenPredictions:
    """Predicted and true token ids with weights (1.0 counts, 0.0 ignored), any equal shapes."""

    predicted: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor


@dataclass
class Detections:
    """The discriminator's per-token logits and labels (B, S); ``judged`` is 1 where its loss judges
    it (every real token, or only the masked positions for ELECTRA 15%), 0 elsewhere (padding),
    so that its metrics describe the task it is trained on."""

    logits: torch.Tensor
    replaced: torch.Tensor
    judged: torch.Tensor


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


SAMPLERS = ("generator", "uniform")


@dataclass
class Sampling:
    """How the masked positions' replacements are drawn (the objective's keys of the same names).

    ``sampler``: ``generator`` (ELECTRA) or ``uniform``, the released code's ``uniform_generator``
    ablation: uniform over the whole vocabulary, special tokens included, and no generator at all.
    ``temperature``: of the generator's softmax. ``disallow_correct``: the sample may not equal the
    original token (the released code's switch, off by default), so every masked position is replaced.
    """

    sampler: str = "generator"
    temperature: float = 1.0
    disallow_correct: bool = False

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"objective.sampler={self.sampler} is not a sampler; choose one of: {', '.join(SAMPLERS)}"
            )
        if self.temperature <= 0:
            raise ConfigError(f"objective.temperature={self.temperature} must be > 0")

    @property
    def uses_generator(self) -> bool:
        return self.sampler == "generator"


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, temperature: float = 1.0, disallow: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from softmax(logits / temperature), as argmax(logits / T + Gumbel noise), in fp32.

    ``disallow`` (logits' shape without the last dim): a token id per row that may not be drawn;
    its logit is set to -inf (the released code subtracts 1000), so the rest keep their odds.
    """
    logits = logits.float() / temperature
    if disallow is not None:
        logits = logits.scatter(-1, disallow.unsqueeze(-1), float("-inf"))
    uniform = torch.rand_like(logits).clamp_min_(torch.finfo(torch.float32).tiny)
    return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)


@torch.no_grad()
def uniform_sample(original: torch.Tensor, vocab_size: int, disallow_correct: bool = False) -> torch.Tensor:
    """A token per element of ``original`` (any shape), uniform over ``[0, vocab_size)``; with
    ``disallow_correct``, uniform over the other ``vocab_size - 1`` ids: draw from one id fewer
    and step over the original (no (..., vocab) tensor, unlike sampling from zero logits)."""
    if not disallow_correct:
        return torch.randint_like(original, vocab_size)
    sampled = torch.randint_like(original, vocab_size - 1)
    return sampled + (sampled >= original).to(sampled.dtype)


@dataclass
class Corruption:
    """The generator's step: its loss and predictions, and the input with its samples written in."""

    gen_loss: torch.Tensor
    gen: TokenPredictions | None  # None for the uniform sampler: there is no generator to score
    input_ids: torch.Tensor  # the original tokens with the samples at the masked positions
    replaced: torch.Tensor  # (B, S) bool: a sample that equals the original is not replaced


def write_samples(batch: dict[str, torch.Tensor], sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input with ``sampled`` (B, P) at the masked positions, and the (B, S) replaced labels."""
    positions, masked_ids, weights = batch["masked_positions"], batch["masked_ids"], batch["masked_weights"]
    sampled = torch.where(weights > 0, sampled, masked_ids)  # unused slots keep their token
    replaced = torch.zeros_like(batch["input_ids"], dtype=torch.bool).scatter(1, positions, sampled != masked_ids)
    return batch["input_ids"].scatter(1, positions, sampled), replaced


def corrupt_with_generator(
    generator: MaskedLM, batch: dict[str, torch.Tensor], temperature: float, disallow_correct: bool = False
) -> Corruption:
    """Run the generator at the masked positions and write its samples (no gradient) into the input."""
    positions, masked_ids, weights = batch["masked_positions"], batch["masked_ids"], batch["masked_weights"]
    logits = generator(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], positions)  # (B, P, V)
    sampled = gumbel_sample(logits, temperature, masked_ids if disallow_correct else None)
    input_ids, replaced = write_samples(batch, sampled)
    return Corruption(
        gen_loss=masked_lm_loss(logits, masked_ids, weights),
        gen=TokenPredictions(logits.detach().argmax(-1), masked_ids, weights),
        input_ids=input_ids,
        replaced=replaced,
    )


def corrupt_uniformly(batch: dict[str, torch.Tensor], vocab_size: int, disallow_correct: bool = False) -> Corruption:
    """The ``uniform`` sampler: replacements uniform over the vocabulary. As in the released code,
    gen_loss is the uniform distribution's cross-entropy, log(vocab_size): a constant with no
    gradient, kept so that ``loss`` reads as the released total loss does."""
    sampled = uniform_sample(batch["masked_ids"], vocab_size, disallow_correct)
    input_ids, replaced = write_samples(batch, sampled)
    gen_loss = torch.tensor(math.log(vocab_size), device=input_ids.device)
    return Corruption(gen_loss=gen_loss, gen=None, input_ids=input_ids, replaced=replaced)


def corrupt(
    sampling: Sampling, generator: MaskedLM | None, main_model: nn.Module, batch: dict[str, torch.Tensor]
) -> Corruption:
    """The corrupted input of the generator-based objectives, by ``sampling.sampler``; the uniform
    sampler reads the vocabulary size from the main model's encoder."""
    if sampling.uses_generator:
        return corrupt_with_generator(generator, batch, sampling.temperature, sampling.disallow_correct)
    return corrupt_uniformly(batch, main_model.encoder.config.vocab_size, sampling.disallow_correct)
