"""ELECTRA's two networks: a small generator (masked LM) and the discriminator (replaced-token detector).

With the default ``embedding_sharing="shared"`` both use one :class:`Embeddings` module (word,
position and token-type tables and the embedding LayerNorm); each keeps its own projection to
its hidden size. The generator's output layer is tied to the word embeddings.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from electra_lit.models.encoder import Embeddings, Encoder, EncoderConfig, init_weights

EMBEDDING_SHARING_MODES = ("shared", "untied")


class Generator(nn.Module):
    """Masked LM whose output head runs only at the ``positions`` to predict, never at all tokens."""

    def __init__(self, config: EncoderConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.encoder = Encoder(config, embeddings)
        self.head_dense = nn.Linear(config.hidden_size, config.embedding_dim)
        self.head_norm = nn.LayerNorm(config.embedding_dim, eps=config.layer_norm_eps)
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(init_weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """Vocabulary logits (batch, predictions, vocab) at ``positions`` (batch, predictions)."""
        hidden = self.encoder(input_ids, token_type_ids, attention_mask)
        index = positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        hidden = hidden.gather(1, index)
        hidden = self.head_norm(F.gelu(self.head_dense(hidden)))
        return F.linear(hidden, self.encoder.embeddings.word.weight, self.output_bias)


class Discriminator(nn.Module):
    """Encoder plus a per-token head (dense, GELU, dense to one logit): is this token replaced?"""

    def __init__(self, config: EncoderConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.encoder = Encoder(config, embeddings)
        self.head_dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.head_out = nn.Linear(config.hidden_size, 1)
        self.apply(init_weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Replaced-token logits (batch, seq)."""
        hidden = self.encoder(input_ids, token_type_ids, attention_mask)
        return self.head_out(F.gelu(self.head_dense(hidden))).squeeze(-1)


def generator_config(discriminator: EncoderConfig, fraction: float) -> EncoderConfig:
    """The generator: same depth and embedding size, ``fraction`` of the width, heads and FFN size."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"generator_fraction={fraction} must be in (0, 1]")
    return replace(
        discriminator,
        embedding_size=discriminator.embedding_dim,
        hidden_size=max(1, round(discriminator.hidden_size * fraction)),
        num_heads=max(1, round(discriminator.num_heads * fraction)),
        intermediate_size=max(1, round(discriminator.intermediate_size * fraction)),
    )


def build_generator_and_discriminator(
    discriminator_config: EncoderConfig,
    generator_fraction: float = 0.25,
    embedding_sharing: str = "shared",
) -> tuple[Generator, Discriminator]:
    """Build the pair, sharing embeddings as ``embedding_sharing`` says ("shared" or "untied")."""
    if embedding_sharing not in EMBEDDING_SHARING_MODES:
        raise ValueError(
            f"embedding_sharing={embedding_sharing!r} is not one of {', '.join(EMBEDDING_SHARING_MODES)}"
        )
    discriminator = Discriminator(discriminator_config)
    shared = discriminator.encoder.embeddings if embedding_sharing == "shared" else None
    generator = Generator(generator_config(discriminator_config, generator_fraction), shared)
    return generator, discriminator
