"""ELECTRA's networks: masked LMs (the generator, or the main model of MLM objectives) and the
discriminator (replaced-token detector), and how the pair shares weights.

Sharing modes (``embedding_sharing``):
- ``shared`` (ELECTRA's default): one :class:`Embeddings` module (word, position and token-type
  tables and the embedding LayerNorm) for both; each model keeps its own projection.
- ``untied``: nothing shared.
- ``all``: one encoder for both, each with its own head; needs equal sizes.
- ``gdes`` (DeBERTaV3's gradient-disentangled sharing): the main model's word embedding is
  stop_grad(generator's) + a zero-initialised delta, so its loss never moves the generator's
  table; position and token-type tables and the LayerNorm are shared as in ``shared``.
The generator's output layer is always tied to its own word embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from electra_lit.models.encoder import Embeddings, Encoder, EncoderConfig, EncoderSizes, init_weights

EMBEDDING_SHARING_MODES = ("shared", "untied", "all", "gdes")
MAIN_HEADS = ("rtd", "mlm", "mlm_copy")


class MaskedLM(nn.Module):
    """Encoder plus an MLM head tied to the word embeddings (dense, GELU, LayerNorm, logits).

    ``forward`` evaluates the head only at ``positions``. With ``copy_head`` the model also has a
    per-token copy gate (All-Tokens MLM): the probability that the input token is the answer.
    """

    def __init__(
        self,
        config: EncoderConfig,
        embeddings: Embeddings | None = None,
        copy_head: bool = False,
        embedding_grad: bool = True,
    ):
        super().__init__()
        self.encoder = Encoder(config, embeddings, embedding_grad)
        self.head_dense = nn.Linear(config.hidden_size, config.embedding_dim)
        self.head_norm = nn.LayerNorm(config.embedding_dim, eps=config.layer_norm_eps)
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.copy_out = nn.Linear(config.hidden_size, 1) if copy_head else None
        self.apply(partial(init_weights, std=config.initializer_range))

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for hidden states (..., hidden)."""
        hidden = self.head_norm(F.gelu(self.head_dense(hidden)))
        table = self.encoder.embeddings.word.weight  # (vocab, embedding_dim): the tied output layer
        return F.linear(hidden, table if self.encoder.embedding_grad else table.detach(), self.output_bias)

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
        return self.head(hidden.gather(1, index))


class Discriminator(nn.Module):
    """Encoder plus a per-token head (dense, GELU, dense to one logit): is this token replaced?"""

    def __init__(self, config: EncoderConfig, embeddings: Embeddings | None = None):
        super().__init__()
        self.encoder = Encoder(config, embeddings)
        self.head_dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.head_out = nn.Linear(config.hidden_size, 1)
        self.apply(partial(init_weights, std=config.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Replaced-token logits (batch, seq)."""
        hidden = self.encoder(input_ids, token_type_ids, attention_mask)
        return self.head_out(F.gelu(self.head_dense(hidden))).squeeze(-1)


class GDESWordEmbedding(nn.Module):
    """Word embedding = stop_grad(source table) + delta, with delta starting at zero (DeBERTaV3)."""

    def __init__(self, source: nn.Embedding):
        super().__init__()
        self.source = source
        self.delta = nn.Parameter(torch.zeros_like(source.weight))

    @property
    def embedding_dim(self) -> int:
        return self.source.embedding_dim

    @property
    def weight(self) -> torch.Tensor:
        return self.source.weight.detach() + self.delta

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.source.weight).detach() + F.embedding(input_ids, self.delta)


def generator_config(
    discriminator: EncoderSizes, fraction: float, sizes: Mapping[str, int] | None = None
) -> EncoderSizes:
    """The generator: same depth and embedding size, ``fraction`` of the width, heads and FFN
    size; ``sizes`` sets any of hidden_size, num_heads, intermediate_size, num_layers explicitly.
    A generator larger than the discriminator is refused (the paper: it makes D worse)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"generator_fraction={fraction} must be in (0, 1]; the paper uses 1/4 (Small, Large) or 1/3 (Base)"
        )
    config = replace(
        discriminator,
        embedding_size=discriminator.embedding_dim,
        hidden_size=max(1, round(discriminator.hidden_size * fraction)),
        num_heads=max(1, round(discriminator.num_heads * fraction)),
        intermediate_size=max(1, round(discriminator.intermediate_size * fraction)),
    )
    sizes = dict(sizes or {})
    allowed = {"hidden_size", "num_heads", "intermediate_size", "num_layers"}
    if set(sizes) - allowed:
        raise ValueError(f"generator sizes {sorted(set(sizes) - allowed)} unknown; allowed: {sorted(allowed)}")
    config = replace(config, **sizes)
    for name in sorted(allowed):
        if getattr(config, name) > getattr(discriminator, name):
            raise ValueError(
                f"generator {name}={getattr(config, name)} is larger than the discriminator's "
                f"{getattr(discriminator, name)}; ELECTRA's generator is smaller (1/4 to 1/2 of its width)"
            )
    return config


def check_sharing(
    generator: EncoderSizes, discriminator: EncoderSizes, embedding_sharing: str, generator_embedding_grad: bool = True
) -> None:
    """Refuse an unknown mode, ``all`` (one encoder for both) with unequal sizes, and a generator
    cut off from embeddings that are not shared (it would never train them)."""
    if embedding_sharing not in EMBEDDING_SHARING_MODES:
        raise ValueError(f"embedding_sharing={embedding_sharing!r} is not one of {', '.join(EMBEDDING_SHARING_MODES)}")
    if not generator_embedding_grad and embedding_sharing != "shared":
        raise ValueError(
            f"generator_embedding_grad=false needs embedding_sharing=shared (got {embedding_sharing!r}): "
            "with other modes nothing else would train the generator's embeddings"
        )
    if embedding_sharing == "all":
        different = [
            f.name for f in fields(discriminator) if getattr(generator, f.name) != getattr(discriminator, f.name)
        ]
        if different:
            raise ValueError(
                "embedding_sharing='all' shares every weight, so generator and discriminator must have "
                f"equal sizes; they differ in {', '.join(different)} (use generator_fraction=1.0)"
            )


@dataclass
class ModelConfig:
    """The ``model`` config: the discriminator's sizes and how the generator derives from them
    and shares weights with it. The rules live in :func:`generator_config` and
    :func:`check_sharing`, which :func:`build_models` applies too."""

    discriminator: EncoderSizes  # the discriminator's sizes; each model option sets them
    generator_fraction: float = 0.25  # generator width, heads and FFN size as a fraction of the discriminator's
    generator: Any = None  # null, or explicit generator sizes, e.g. {hidden_size: 64, num_heads: 1, num_layers: 6}
    embedding_sharing: str = "shared"  # shared: embeddings (ELECTRA) | untied | all: every weight (generator_fraction=1.0) | gdes: DeBERTaV3's stop-gradient sharing
    # false: the generator's loss does not move the shared embeddings, only the discriminator's
    # does (the generator reads them, and its tied output layer, under stop-gradient); needs shared
    generator_embedding_grad: bool = True

    def __post_init__(self) -> None:
        check_sharing(self.generator_sizes(), self.discriminator, self.embedding_sharing, self.generator_embedding_grad)

    def generator_sizes(self) -> EncoderSizes:
        return generator_config(self.discriminator, self.generator_fraction, self.generator)


def _gdes_embeddings(generator_embeddings: Embeddings, config: EncoderConfig) -> Embeddings:
    embeddings = Embeddings(config)
    embeddings.word = GDESWordEmbedding(generator_embeddings.word)
    embeddings.position = generator_embeddings.position
    embeddings.token_type = generator_embeddings.token_type
    embeddings.norm = generator_embeddings.norm
    return embeddings


def build_models(
    discriminator_config: EncoderConfig,
    main_head: str = "rtd",
    with_generator: bool = True,
    generator_fraction: float = 0.25,
    generator_sizes: Mapping[str, int] | None = None,
    embedding_sharing: str = "shared",
    generator_embedding_grad: bool = True,
) -> tuple[MaskedLM | None, nn.Module]:
    """The generator (or None) and the main model, the one kept after pretraining.

    ``main_head``: ``rtd`` (a :class:`Discriminator`), ``mlm`` or ``mlm_copy`` (a :class:`MaskedLM`
    of the discriminator's size, the latter with a copy gate).
    """
    if main_head not in MAIN_HEADS:
        raise ValueError(f"main_head={main_head!r} is not one of {', '.join(MAIN_HEADS)}")
    make_main = {"rtd": Discriminator, "mlm": MaskedLM, "mlm_copy": partial(MaskedLM, copy_head=True)}[main_head]
    if not with_generator:
        return None, make_main(discriminator_config)

    gen_config = generator_config(discriminator_config, generator_fraction, generator_sizes)
    check_sharing(gen_config, discriminator_config, embedding_sharing, generator_embedding_grad)
    if embedding_sharing == "all":
        main = make_main(discriminator_config)
        generator = MaskedLM(discriminator_config)
        generator.encoder = main.encoder  # one encoder, two heads
        return generator, main

    generator = MaskedLM(gen_config, embedding_grad=generator_embedding_grad)
    shared = generator.encoder.embeddings
    embeddings = {
        "shared": shared,
        "untied": None,
        "gdes": _gdes_embeddings(shared, discriminator_config) if embedding_sharing == "gdes" else None,
    }[embedding_sharing]
    return generator, make_main(discriminator_config, embeddings)
