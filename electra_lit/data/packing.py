"""ELECTRA's sequence builder: the sentences of one document become ``[CLS] A [SEP] B [SEP]``.

Sentences of a document are accumulated until their token count reaches the target length or
the document ends, so a sequence never spans two documents and a document's tail gives a short,
padded sequence. Segment A takes whole sentences up to (target - 3) // 2 tokens (or all of them,
with probability ``single_segment_prob``), segment B the rest; tokens past ``max_seq_length``
are cut. After each sequence the next target is, with probability ``short_seq_prob``, a random
length in [5, max_seq_length] instead of ``max_seq_length``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_TARGET_LENGTH = 5


@dataclass
class PackedSequences:
    """Sequences padded to one length: ``input_ids`` and ``token_type_ids`` (N, S), ``lengths`` (N,)."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def padding_fraction(self) -> float:
        """Share of all positions that are padding (what this packing wastes)."""
        return 1.0 - float(self.lengths.sum()) / max(1, self.input_ids.size)


def pack_documents(
    documents: Iterable[Sequence[Sequence[int]]],
    max_seq_length: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    rng: random.Random,
    single_segment_prob: float = 0.1,
    short_seq_prob: float = 0.05,
) -> PackedSequences:
    """Build sequences from tokenized documents (each a list of sentences, each a list of ids)."""
    if max_seq_length < MIN_TARGET_LENGTH:
        raise ValueError(f"max_seq_length={max_seq_length} must be at least {MIN_TARGET_LENGTH}")

    def next_target() -> int:
        if rng.random() < short_seq_prob:
            return rng.randint(MIN_TARGET_LENGTH, max_seq_length)
        return max_seq_length

    def make_sequence(sentences: list[Sequence[int]], target: int) -> tuple[list[int], int]:
        single = rng.random() < single_segment_prob
        a_budget = float("inf") if single else (target - 3) // 2
        segment_a: list[int] = []
        segment_b: list[int] = []
        for sentence in sentences:
            if not segment_b and (not segment_a or len(segment_a) + len(sentence) <= a_budget):
                segment_a.extend(sentence)
            else:
                segment_b.extend(sentence)
        segment_a = segment_a[: max_seq_length - 2]
        segment_b = segment_b[: max(0, max_seq_length - 3 - len(segment_a))]
        ids = [cls_id, *segment_a, sep_id]
        if segment_b:
            ids += [*segment_b, sep_id]
        return ids, len(segment_a) + 2

    rows: list[tuple[list[int], int]] = []
    target = max_seq_length
    for document in documents:
        chunk: list[Sequence[int]] = []
        length = 0
        for sentence in document:
            if not sentence:
                continue
            chunk.append(sentence)
            length += len(sentence)
            if length >= target:
                rows.append(make_sequence(chunk, target))
                chunk, length, target = [], 0, next_target()
        if chunk:
            rows.append(make_sequence(chunk, target))
            target = next_target()

    input_ids = np.full((len(rows), max_seq_length), pad_id, dtype=np.int32)
    token_type_ids = np.zeros((len(rows), max_seq_length), dtype=np.int8)
    lengths = np.zeros(len(rows), dtype=np.int32)
    for i, (ids, segment_a_end) in enumerate(rows):
        input_ids[i, : len(ids)] = ids
        token_type_ids[i, segment_a_end : len(ids)] = 1
        lengths[i] = len(ids)
    return PackedSequences(input_ids, token_type_ids, lengths)
