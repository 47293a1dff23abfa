"""The Hugging Face peer of electra_lit's training step, at electra_lit's sizes, on any device.

The ELECTRA step as a transformers user writes it (the wiring of ``../shared/bench/peer_electra.py``
``build_hf``, the public PyTorch reproductions' way): an ``ElectraForMaskedLM`` generator run over
the whole sequence with ``labels=-100`` outside the masked positions, Gumbel-max sampling at the
masked positions, an ``ElectraForPreTraining`` discriminator on the sequence with the samples
written in, the two sharing their embeddings and the generator's output layer tied to the word
embeddings, ``loss = gen_loss + 50 * disc_loss``, AdamW. Unlike the shared peer file this one runs
on the CPU as well as on CUDA, and takes its sizes and its batch from electra_lit:

- :func:`electra_configs` turns electra_lit's two encoder configs (``module.main_model.encoder.config``
  and ``module.generator.encoder.config``) into ``ElectraConfig``s of the same hidden size, layers,
  heads, FFN size, embedding size, vocabulary, positions, dropout and LayerNorm epsilon;
- :func:`peer_inputs` turns a batch of electra_lit's ``MaskingCollator`` (the masked ``input_ids``
  and the ``masked_positions``/``masked_ids``/``masked_weights`` slots) into the peer's inputs: the
  same masked input, the same masked positions as a boolean mask, the original ids and the labels;
- :func:`make_step` returns one training step (forward, backward, AdamW) of a :class:`HFElectraPair`.

Used by ``scripts/benchmark_step.py --peer hf``; importable on its own::

    pair = HFElectraPair(*electra_configs(module.main_model.encoder.config, module.generator.encoder.config))
    step = make_step(pair.to(device), torch.optim.AdamW(pair.parameters(), lr=1e-4), peer_inputs(batch))
    step()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def electra_config(encoder, attn_implementation: str = "sdpa"):
    """The ``ElectraConfig`` of one electra_lit encoder config (any object with its fields:
    ``hidden_size``, ``num_layers``, ``num_heads``, ``intermediate_size``, ``embedding_dim`` or
    ``embedding_size``, ``vocab_size`` and optionally ``max_position_embeddings``,
    ``type_vocab_size``, ``dropout``, ``layer_norm_eps``, ``initializer_range``)."""
    from transformers import ElectraConfig

    embedding = getattr(encoder, "embedding_dim", None) or encoder.embedding_size or encoder.hidden_size
    dropout = getattr(encoder, "dropout", 0.1)
    config = ElectraConfig(
        vocab_size=encoder.vocab_size,
        embedding_size=embedding,
        hidden_size=encoder.hidden_size,
        num_hidden_layers=encoder.num_layers,
        num_attention_heads=encoder.num_heads,
        intermediate_size=encoder.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=getattr(encoder, "max_position_embeddings", 512),
        type_vocab_size=getattr(encoder, "type_vocab_size", 2),
        layer_norm_eps=getattr(encoder, "layer_norm_eps", 1e-12),
        initializer_range=getattr(encoder, "initializer_range", 0.02),
    )
    config._attn_implementation = attn_implementation  # as peer_electra.py sets it
    return config


def electra_configs(discriminator, generator, attn_implementation: str = "sdpa"):
    """(discriminator, generator) ``ElectraConfig``s of electra_lit's two encoder configs."""
    return electra_config(discriminator, attn_implementation), electra_config(generator, attn_implementation)


def peer_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The peer's view of a ``MaskingCollator`` batch: ``input_ids`` (the same masked input),
    ``original_ids``, ``masked`` (B, S) bool at the used prediction slots, ``labels`` (the original
    token there, -100 elsewhere), ``attention_mask`` and ``token_type_ids``."""
    positions, weights = batch["masked_positions"], batch["masked_weights"]
    original = batch["input_ids"].scatter(1, positions, batch["masked_ids"])
    masked = torch.zeros_like(original, dtype=torch.bool).scatter(1, positions, weights > 0)
    return {
        "input_ids": batch["input_ids"],
        "original_ids": original,
        "masked": masked,
        "labels": original.masked_fill(~masked, -100),
        "attention_mask": batch["attention_mask"],
        "token_type_ids": batch["token_type_ids"],
    }


class HFElectraPair(nn.Module):
    """``ElectraForMaskedLM`` generator + ``ElectraForPreTraining`` discriminator, embeddings
    shared and the generator's output layer tied to them; ``forward`` returns the ELECTRA loss."""

    def __init__(self, discriminator_config, generator_config, disc_weight: float = 50.0):
        super().__init__()
        from transformers import ElectraForMaskedLM, ElectraForPreTraining

        self.gen = ElectraForMaskedLM(generator_config)
        self.disc = ElectraForPreTraining(discriminator_config)
        self.gen.electra.embeddings = self.disc.electra.embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight
        self.disc_weight = disc_weight

    def forward(
        self,
        input_ids: torch.Tensor,
        original_ids: torch.Tensor,
        masked: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> torch.Tensor:
        out = self.gen(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, labels=labels)
        with torch.no_grad():
            logits = out.logits[masked].float()
            gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-9)).clamp_min(1e-9))
            sampled = (logits + gumbel).argmax(-1)
        corrupted = original_ids.clone()
        corrupted[masked] = sampled
        replaced = (corrupted != original_ids).float()
        disc_logits = self.disc(
            input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits
        real = attention_mask.bool()
        disc_loss = F.binary_cross_entropy_with_logits(disc_logits.float()[real], replaced[real])
        return out.loss + self.disc_weight * disc_loss


def make_step(
    pair: HFElectraPair,
    optimizer: torch.optim.Optimizer,
    inputs: dict[str, torch.Tensor],
    autocast: contextlib.AbstractContextManager | None = None,
    forward: Callable[..., torch.Tensor] | None = None,
) -> Callable[[], None]:
    """One training step of ``pair`` on ``inputs`` (:func:`peer_inputs`): forward (in ``autocast``
    when given; ``forward`` replaces ``pair``, e.g. ``torch.compile(pair)``), backward, AdamW."""
    forward = pair if forward is None else forward  # (an nn.Module has no truth value)
    autocast = autocast or contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = forward(**inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
