"""The masking collator: stacks packed sequences and picks the positions the generator predicts.

Each sequence gets n = max(1, round(mask_prob * real tokens)) predictions, capped by
``max_predictions`` (the same P for every batch, so shapes never change). Positions are drawn
without replacement among the real tokens that are not [CLS], [SEP], [MASK] or padding;
of them ``mask_token_prob`` become [MASK] (ELECTRA: 85%), ``random_token_prob`` a random
non-special token (ELECTRA: 0%, BERT: 10% with 80% [MASK]) and the rest keep their token.

Masks are a pure function of ``seed`` and the batch's example keys: the same batch gets the same
masks with 0 or 8 workers, and a resumed run masks exactly as an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from electra_lit.data.tokenizer import SpecialTokenIds
from electra_lit.errors import ConfigError


def one_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same int64 tensors as views of one buffer. A loader worker sends a batch to the
    training process one shared-memory block per storage, and that per-block cost, not the
    bytes, limits the feed rate: one block instead of five roughly doubles it."""
    buffer = torch.empty(sum(t.numel() for t in tensors.values()), dtype=torch.int64)
    views, offset = {}, 0
    for name, tensor in tensors.items():
        views[name] = buffer[offset : offset + tensor.numel()].view_as(tensor).copy_(tensor)
        offset += tensor.numel()
    return views


def default_max_predictions(mask_prob: float, max_seq_length: int) -> int:
    """ELECTRA's cap on predictions per sequence: int((mask_prob + 0.005) * max_seq_length)."""
    return max(1, int((mask_prob + 0.005) * max_seq_length))


@dataclass
class MaskingConfig:
    """The ``masking`` config. :class:`MaskingCollator` checks its arguments through this class,
    so a collator built in code and a config are held to the same rules, with the same messages."""

    mask_prob: float = 0.15  # share of real tokens the generator predicts (paper: 0.15; 0.25 for Large)
    max_predictions: int | None = None  # predictions per sequence; null = int((mask_prob + 0.005) * max_seq_length)
    mask_token_prob: float = 0.85  # of those, share replaced by [MASK] (ELECTRA: 0.85, BERT: 0.8)
    random_token_prob: float = 0.0  # share replaced by a random token (BERT: 0.1); the others keep their token

    def __post_init__(self) -> None:
        p, q, r, n = self.mask_prob, self.mask_token_prob, self.random_token_prob, self.max_predictions
        if not 0 < p < 1:
            raise ConfigError(f"masking.mask_prob={p} is outside (0, 1); use a fraction such as masking.mask_prob=0.15")
        if not 0 <= q <= 1:
            raise ConfigError(f"masking.mask_token_prob={q} is outside [0, 1]; ELECTRA uses 0.85, BERT 0.8")
        if not 0 <= r <= 1 - q:
            raise ConfigError(
                f"masking.random_token_prob={r} must be in [0, 1 - masking.mask_token_prob = {1 - q:g}]; BERT uses 0.1"
            )
        if n is not None and n < 1:
            raise ConfigError(f"masking.max_predictions={n} must be null or at least 1")

    def predictions(self, max_seq_length: int) -> int:
        """Prediction slots per sequence of ``max_seq_length`` tokens: ``max_predictions``, or
        ELECTRA's default when null; more slots than tokens are refused."""
        if self.max_predictions is None:
            return default_max_predictions(self.mask_prob, max_seq_length)
        if self.max_predictions > max_seq_length:
            raise ConfigError(
                f"masking.max_predictions={self.max_predictions} must be null or in "
                f"[1, data.max_seq_length={max_seq_length}]"
            )
        return self.max_predictions


class MaskingCollator:
    """``collate_fn`` for examples ``{"key", "input_ids", "token_type_ids", "attention_mask"}``.

    Returns a batch of fixed-shape tensors: ``input_ids`` (with [MASK]s), ``token_type_ids``,
    ``attention_mask`` (B, S) and ``masked_positions``, ``masked_ids`` (the original tokens),
    ``masked_weights`` (1.0 real, 0.0 unused slot) (B, P). Unused slots point at position 0
    and hold its token, so writing them back is a no-op.
    """

    def __init__(
        self,
        *,
        special_token_ids: SpecialTokenIds,
        max_seq_length: int,
        mask_prob: float = 0.15,
        max_predictions: int | None = None,
        mask_token_prob: float = 0.85,
        random_token_prob: float = 0.0,
        vocab_size: int | None = None,
        seed: int = 0,
    ):
        config = MaskingConfig(
            mask_prob=mask_prob,
            max_predictions=max_predictions,
            mask_token_prob=mask_token_prob,
            random_token_prob=random_token_prob,
        )
        if random_token_prob > 0 and vocab_size is None:
            raise ValueError("random_token_prob > 0 needs the vocab_size to draw random tokens from")
        max_predictions = config.predictions(max_seq_length)
        self.mask_prob = mask_prob
        self.mask_token_prob = mask_token_prob
        self.random_token_prob = random_token_prob
        self.max_predictions = max_predictions
        self.mask_token_id = special_token_ids.mask
        self.never_masked = torch.tensor(special_token_ids.never_masked)
        specials = torch.tensor([special_token_ids.unk, *special_token_ids.never_masked])
        vocab = torch.arange(vocab_size or 0)
        self.random_tokens = vocab[~torch.isin(vocab, specials)]
        self.seed = seed

    def _generator(self, keys: Sequence[int]) -> torch.Generator:
        """A generator seeded by ``seed`` and the ordered example keys of this batch."""
        digest = hashlib.blake2b(
            np.asarray(keys, dtype=np.int64).tobytes(),
            digest_size=8,
            key=(self.seed % 2**64).to_bytes(8, "little"),
        ).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        try:
            keys = [int(example["key"]) for example in examples]
        except KeyError:
            raise KeyError(
                "MaskingCollator needs a unique integer 'key' in every example; masks are derived from it"
            ) from None

        def stack(name: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([np.asarray(e[name]) for e in examples])).long()

        input_ids, token_type_ids, attention_mask = (
            stack("input_ids"),
            stack("token_type_ids"),
            stack("attention_mask"),
        )
        generator = self._generator(keys)
        batch_size, seq_len = input_ids.shape
        num_slots = self.max_predictions

        candidates = attention_mask.bool() & ~torch.isin(input_ids, self.never_masked)
        num_to_mask = (attention_mask.sum(1) * self.mask_prob).round().long().clamp(1, num_slots)
        num_to_mask = torch.minimum(num_to_mask, candidates.sum(1))

        scores = torch.rand(batch_size, seq_len, generator=generator).masked_fill(~candidates, -1.0)
        chosen = scores.topk(min(num_slots, seq_len), dim=1).indices  # candidates first, in random order
        if seq_len < num_slots:  # a batch shorter than the cap (e.g. one sentence): unused slots stay at 0
            chosen = torch.nn.functional.pad(chosen, (0, num_slots - seq_len))
        used = torch.arange(num_slots) < num_to_mask[:, None]
        positions = torch.where(used, chosen, 0)
        masked_ids = input_ids.gather(1, positions)

        draw = torch.rand(batch_size, num_slots, generator=generator)
        to_mask_token = used & (draw < self.mask_token_prob)
        new_tokens = torch.where(to_mask_token, self.mask_token_id, masked_ids)
        if self.random_token_prob > 0:
            to_random = used & (draw >= self.mask_token_prob) & (draw < self.mask_token_prob + self.random_token_prob)
            random_ids = self.random_tokens[
                torch.randint(len(self.random_tokens), (batch_size, num_slots), generator=generator)
            ]
            new_tokens = torch.where(to_random, random_ids, new_tokens)
        batch = one_storage(
            {
                "input_ids": input_ids.scatter(1, positions, new_tokens),
                "token_type_ids": token_type_ids,
                "attention_mask": attention_mask,
                "masked_positions": positions,
                "masked_ids": masked_ids,
            }
        )
        batch["masked_weights"] = used.float()
        return batch
