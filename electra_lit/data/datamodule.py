"""LightningDataModule: corpus -> tokens -> packed sequences -> masked batches.

Documents are split into train and validation before packing (no sequence leaks between them).
Loaders are torchdata ``StatefulDataLoader``s: Lightning stores their position in every
checkpoint, and together with key-derived masks a resumed run sees the batches an uninterrupted
run would have seen.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from electra_lit.data.corpus import TextCorpus
from electra_lit.data.masking import MaskingCollator
from electra_lit.data.packing import PackedSequences, pack_documents
from electra_lit.data.tokenizer import SpecialTokenIds
from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)


class SequenceDataset(Dataset):
    """Packed sequences as examples ``{"key", "input_ids", "token_type_ids", "attention_mask"}``."""

    def __init__(self, sequences: PackedSequences):
        self.sequences = sequences
        self._positions = np.arange(sequences.input_ids.shape[1])

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        return {
            "key": index,
            "input_ids": self.sequences.input_ids[index],
            "token_type_ids": self.sequences.token_type_ids[index],
            "attention_mask": (self._positions < self.sequences.lengths[index]).astype(np.int8),
        }


def tokenize_documents(tokenizer: Tokenizer, documents: list[list[str]]) -> list[list[list[int]]]:
    """Every sentence to ids in one batched call (the Rust tokenizer runs it in parallel)."""
    sentences = [sentence for document in documents for sentence in document]
    encoded = tokenizer.encode_batch(sentences, add_special_tokens=False)
    result, start = [], 0
    for document in documents:
        result.append([e.ids for e in encoded[start : start + len(document)]])
        start += len(document)
    return result


class PretrainDataModule(L.LightningDataModule):
    """Masked pretraining batches from a :class:`TextCorpus`.

    Args:
        corpus: where the text comes from.
        tokenizer: a ``tokenizers.Tokenizer`` holding [PAD] [UNK] [CLS] [SEP] [MASK].
        masking: builds the collator; called with ``special_token_ids``, ``max_seq_length``,
            ``vocab_size`` and ``seed``.
        max_seq_length: tokens per sequence, [CLS]/[SEP] included.
        batch_size: sequences per batch (per device).
        num_workers: loader worker processes (0 loads in the training process).
        val_fraction: share of documents held out for validation (at least one document).
        single_segment_prob / short_seq_prob: the sequence builder's rates (see ``packing``).
        seed: seeds the document split, packing, shuffling and masking.
    """

    def __init__(
        self,
        corpus: TextCorpus,
        tokenizer: Tokenizer,
        masking: Callable[..., MaskingCollator],
        max_seq_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 2,
        val_fraction: float = 0.02,
        single_segment_prob: float = 0.1,
        short_seq_prob: float = 0.05,
        seed: int = 0,
    ):
        super().__init__()
        self.corpus = corpus
        self.tokenizer = tokenizer
        self.special_token_ids = SpecialTokenIds.from_tokenizer(tokenizer)
        self.collator = masking(
            special_token_ids=self.special_token_ids, max_seq_length=max_seq_length,
            vocab_size=tokenizer.get_vocab_size(), seed=seed,
        )
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.single_segment_prob = single_segment_prob
        self.short_seq_prob = short_seq_prob
        self.seed = seed
        self.train_set: SequenceDataset | None = None
        self.val_set: SequenceDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        documents = list(self.corpus.documents())
        if len(documents) < 2:
            raise ConfigError(
                f"data.corpus yields {len(documents)} document(s) from {len(self.corpus.files)} file(s); "
                "pretraining needs at least 2 (one is held out for validation)"
            )
        order = list(range(len(documents)))
        random.Random(self.seed).shuffle(order)
        num_val = max(1, round(self.val_fraction * len(documents)))
        tokenized = tokenize_documents(self.tokenizer, documents)
        self.train_set = SequenceDataset(self._pack([tokenized[i] for i in sorted(order[num_val:])], self.seed))
        self.val_set = SequenceDataset(self._pack([tokenized[i] for i in sorted(order[:num_val])], self.seed + 1))
        for name, dataset in (("train", self.train_set), ("validation", self.val_set)):
            if len(dataset) < self.batch_size:
                raise ConfigError(
                    f"the {name} split has {len(dataset)} sequences, fewer than data.batch_size="
                    f"{self.batch_size}; lower data.batch_size or use a larger corpus"
                )
        log.info(
            "Data: %d train / %d validation sequences of %d tokens from %d documents (%.1f%% padding)",
            len(self.train_set), len(self.val_set), self.max_seq_length, len(documents),
            100 * self.train_set.sequences.padding_fraction(),
        )

    def _pack(self, documents: list[list[list[int]]], seed: int) -> PackedSequences:
        ids = self.special_token_ids
        return pack_documents(
            documents, self.max_seq_length, cls_id=ids.cls, sep_id=ids.sep, pad_id=ids.pad,
            rng=random.Random(seed), single_segment_prob=self.single_segment_prob,
            short_seq_prob=self.short_seq_prob,
        )

    def _loader(self, dataset: SequenceDataset, shuffle: bool) -> StatefulDataLoader:
        return StatefulDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=True,  # every batch has the same shape
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collator,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> StatefulDataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> StatefulDataLoader:
        return self._loader(self.val_set, shuffle=False)
