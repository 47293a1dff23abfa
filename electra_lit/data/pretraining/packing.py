"""Building ``[CLS] A [SEP] B [SEP]`` sequences from tokenized documents, in two modes.

``document`` (ELECTRA's data builder, the default to reproduce): the sentences of ONE document
are accumulated until their token count reaches the target length or the document ends, so a
sequence never spans two documents and a document's tail gives a short, padded sequence.

``packed`` (denser): whole documents are concatenated until the next one does not fit; a new
sequence starts at a document boundary. A document longer than a sequence is cut into
sequences as in ``document`` mode. Less padding, more tokens per step.

In both, the sentences of a sequence are split into segment A and segment B by whole sentences,
A's budget being (target - 3) // 2 tokens (unlimited, a single segment, with probability
``single_segment_prob``), by one of two rules (``segment_split``):

- ``released`` (ELECTRA's ``_create_example``, the default): each sentence in turn goes to A if A
  is empty, or A stays under its budget with it, or (B still empty and A under budget) by a coin
  flip; otherwise to B. So A may overshoot its budget, and a later short sentence may join A after
  B has begun (A is then not a prefix of the text).
- ``prefix``: A is the longest run of leading sentences within the budget (at least one), B the
  rest; the text keeps its order and A holds fewer of the tokens.

Tokens past ``max_seq_length`` are cut; after each sequence the next target is, with probability
``short_seq_prob``, a random length in [5, max_seq_length] instead of ``max_seq_length``.

A sentence longer than a sequence holds (more than ``max_seq_length - 2`` tokens: a text
without sentence ends) is cut, and the rest of it is lost. The builder counts those sentences
and the tokens they lose (:class:`Truncated`); :func:`truncation_warning` says it in one line.

The builder is incremental and its state (pending sentences, target, random state, counts) can
be saved and restored, so a stream of documents can stop and resume mid-way.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from electra_lit.errors import ConfigError

MIN_TARGET_LENGTH = 5
PACKING_MODES = ("document", "packed")
SEGMENT_SPLITS = ("released", "prefix")


def check_packing(mode: str) -> None:
    """The one check of ``data.packing``: the builder's and the config's."""
    if mode not in PACKING_MODES:
        raise ConfigError(f"data.packing={mode} is not a packing mode; choose one of: {', '.join(PACKING_MODES)}")


def check_segment_split(rule: str) -> None:
    """The one check of ``data.segment_split``: the builder's and the config's."""
    if rule not in SEGMENT_SPLITS:
        raise ConfigError(
            f"data.segment_split={rule} is not a segment split; choose one of: {', '.join(SEGMENT_SPLITS)}"
        )


Sentence = Sequence[int]


def split_segments(
    sentences: Sequence[Sentence], a_budget: float, rule: str, rng: random.Random
) -> tuple[list[Sentence], list[Sentence]]:
    """The sentences of segment A and of segment B, each in text order (see the module docstring).

    ``released`` draws from ``rng`` only where ELECTRA's code does (its ``or`` short-circuits), so
    a seed gives the sequences that code's rule gives for it."""
    segment_a: list[Sentence] = []
    segment_b: list[Sentence] = []
    a_length = 0
    for sentence in sentences:
        fits = a_length + len(sentence)
        if rule == "prefix":
            to_a = not segment_b and (not segment_a or fits <= a_budget)
        else:
            to_a = not segment_a or fits < a_budget or (not segment_b and a_length < a_budget and rng.random() < 0.5)
        if to_a:
            segment_a.append(sentence)
            a_length = fits
        else:
            segment_b.append(sentence)
    return segment_a, segment_b


@dataclass
class Truncated:
    """What packing cut: ``sentences`` longer than a sequence of ``max_seq_length`` holds, the
    ``dropped_tokens`` they lost, of ``input_tokens`` tokens fed in all. Counts add up (``+``)
    across builders, chunks and splits; plain ints, so they travel between processes."""

    max_seq_length: int = 0
    sentences: int = 0
    dropped_tokens: int = 0
    input_tokens: int = 0

    def __add__(self, other: Truncated) -> Truncated:
        return Truncated(
            max(self.max_seq_length, other.max_seq_length),
            self.sentences + other.sentences,
            self.dropped_tokens + other.dropped_tokens,
            self.input_tokens + other.input_tokens,
        )

    def as_list(self) -> list[int]:
        return [self.sentences, self.dropped_tokens, self.input_tokens]


@dataclass
class PackedSequences:
    """Sequences padded to one length: ``input_ids`` and ``token_type_ids`` (N, S), ``lengths`` (N,);
    ``truncated``: what building them cut (:func:`truncation_warning`)."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray
    truncated: Truncated = field(default_factory=Truncated)

    def __len__(self) -> int:
        return len(self.lengths)

    def padding_fraction(self) -> float:
        """Share of all positions that are padding (what this packing wastes)."""
        return 1.0 - float(self.lengths.sum()) / max(1, self.input_ids.size)

    def segment_a_share(self) -> float:
        """Of the tokens of the sequences with two segments ([CLS] and [SEP]s left out), the share
        in segment A (what ``segment_split`` changes); 0 when no sequence has a segment B."""
        real = np.arange(self.input_ids.shape[1]) < self.lengths[:, None]  # (N, S)
        b = ((self.token_type_ids == 1) & real).sum(axis=1)  # B's tokens and its [SEP], per sequence
        pair = b > 0
        a_tokens = int(self.lengths[pair].sum() - b[pair].sum()) - 2 * int(pair.sum())  # less [CLS] A's [SEP]
        b_tokens = int(b[pair].sum()) - int(pair.sum())  # less B's [SEP]
        return a_tokens / max(1, a_tokens + b_tokens)

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        return self.input_ids[index], self.token_type_ids[index], int(self.lengths[index])

    def tokens(self) -> int:
        """Real tokens, [CLS] and [SEP] included; padding left out."""
        return int(self.lengths.sum())

    def select(self, indices: Sequence[int]) -> PackedSequences:
        """The rows at ``indices``, in that order (what was cut stays with the whole)."""
        indices = np.asarray(indices, dtype=np.int64)
        return PackedSequences(
            self.input_ids[indices], self.token_type_ids[indices], self.lengths[indices], self.truncated
        )


class SequenceBuilder:
    """Turns tokenized documents (lists of sentences of ids) into sequences ``(ids, segment_a_end)``."""

    def __init__(
        self,
        max_seq_length: int,
        cls_id: int,
        sep_id: int,
        seed: int = 0,
        mode: str = "document",
        single_segment_prob: float = 0.1,
        short_seq_prob: float = 0.05,
        segment_split: str = "released",
    ):
        if max_seq_length < MIN_TARGET_LENGTH:
            raise ValueError(f"max_seq_length={max_seq_length} must be at least {MIN_TARGET_LENGTH}")
        check_packing(mode)
        check_segment_split(segment_split)
        self.max_seq_length, self.cls_id, self.sep_id, self.mode = max_seq_length, cls_id, sep_id, mode
        self.segment_split = segment_split
        self.single_segment_prob, self.short_seq_prob = single_segment_prob, short_seq_prob
        self.rng = random.Random(seed)
        self.pending: list[list[int]] = []  # sentences waiting for a sequence (packed mode)
        self.target = max_seq_length
        self.truncated = Truncated(max_seq_length)  # sentences cut because no sequence holds them

    @property
    def truncated_sentences(self) -> int:
        """Sentences longer than a sequence holds, so far: each was cut to fit."""
        return self.truncated.sentences

    @property
    def dropped_tokens(self) -> int:
        """The tokens those sentences lost."""
        return self.truncated.dropped_tokens

    def state_dict(self) -> dict[str, Any]:
        return {
            "pending": [list(s) for s in self.pending],
            "target": self.target,
            "rng": self.rng.getstate(),
            "truncated": self.truncated.as_list(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = [list(s) for s in state["pending"]]
        self.target = state["target"]
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        self.truncated = Truncated(self.max_seq_length, *state.get("truncated", ()))  # older states: none

    def _next_target(self) -> None:
        if self.rng.random() < self.short_seq_prob:
            self.target = self.rng.randint(MIN_TARGET_LENGTH, self.max_seq_length)
        else:
            self.target = self.max_seq_length

    def _sequence(self, sentences: list[Sentence]) -> tuple[list[int], int]:
        single = self.rng.random() < self.single_segment_prob
        a_budget = float("inf") if single else (self.target - 3) // 2
        in_a, in_b = split_segments(sentences, a_budget, self.segment_split, self.rng)
        segment_a = [token for sentence in in_a for token in sentence]
        segment_b = [token for sentence in in_b for token in sentence]
        whole = len(segment_a) + len(segment_b)
        segment_a = segment_a[: self.max_seq_length - 2]
        segment_b = segment_b[: max(0, self.max_seq_length - 3 - len(segment_a))]
        if len(segment_a) + len(segment_b) < whole:  # something was cut: was it a sentence no sequence holds?
            self._count_cut(in_a, len(segment_a))
            self._count_cut(in_b, len(segment_b))
        ids = [self.cls_id, *segment_a, self.sep_id]
        if segment_b:
            ids += [*segment_b, self.sep_id]
        self._next_target()
        return ids, len(segment_a) + 2

    def _count_cut(self, sentences: list[Sentence], kept: int) -> None:
        """Count the sentences of one segment that are longer than a sequence holds, and what
        they lost, when the segment kept its first ``kept`` tokens. (Tokens of shorter sentences
        past the end of a sequence are cut as ELECTRA cuts them, and not counted.)"""
        for sentence in sentences:
            keep = min(len(sentence), kept)
            kept -= keep
            if len(sentence) > self.max_seq_length - 2:
                self.truncated.sentences += 1
                self.truncated.dropped_tokens += len(sentence) - keep

    def _split_document(self, sentences: list[Sentence]) -> list[tuple[list[int], int]]:
        """ELECTRA's rule within one document: emit whenever the target length is reached."""
        out, chunk, length = [], [], 0
        for sentence in sentences:
            chunk.append(sentence)
            length += len(sentence)
            if length >= self.target:
                out.append(self._sequence(chunk))
                chunk, length = [], 0
        if chunk:
            out.append(self._sequence(chunk))
        return out

    def add(self, document: Iterable[Sentence]) -> list[tuple[list[int], int]]:
        """Feed one document; returns the sequences it completes."""
        sentences = [list(s) for s in document if len(s)]
        if not sentences:
            return []
        size = sum(len(s) for s in sentences)
        self.truncated.input_tokens += size
        if self.mode == "document":
            return self._split_document(sentences)
        out = []
        pending_size = sum(len(s) for s in self.pending)
        if self.pending and pending_size + size > self.target - 3:  # the next document does not fit
            out.append(self._sequence(self.pending))
            self.pending = []
        if size > self.target - 3 and not self.pending:  # longer than a sequence: cut as ELECTRA does
            return out + self._split_document(sentences)
        self.pending.extend(sentences)
        return out

    def finish(self) -> list[tuple[list[int], int]]:
        """The last, partly filled sequence (packed mode)."""
        out = [self._sequence(self.pending)] if self.pending else []
        self.pending = []
        return out


def truncation_warning(counts: Truncated | SequenceBuilder | PackedSequences) -> str | None:
    """One line saying how many sentences were cut because no sequence holds them and how many
    tokens that lost, with the fix; None when nothing was. Log it once, with the counts of all
    builders added up (``Truncated`` adds with ``+``)."""
    truncated = counts if isinstance(counts, Truncated) else counts.truncated
    if not truncated.sentences:
        return None
    n = truncated.sentences
    share = (
        f" ({100 * truncated.dropped_tokens / truncated.input_tokens:.1f}% of all)" if truncated.input_tokens else ""
    )
    return (
        f"{n:,} {'sentence' if n == 1 else 'sentences'} longer than a sequence "
        f"(data.max_seq_length={truncated.max_seq_length}) {'was' if n == 1 else 'were'} cut to fit: "
        f"{truncated.dropped_tokens:,} tokens dropped{share}; the corpus has text without sentence ends "
        "(. ! ? before a capital letter): split it into sentences or blank-line separated paragraphs, "
        "or raise data.max_seq_length"
    )


PADDING_WARNING_SHARE = 0.25  # more padding than this is a corpus of short documents, worth a hint


def padding_warning(padding_fraction: float, packing: str, max_seq_length: int) -> str | None:
    """One line when more than a quarter of the positions in the batches are padding: the
    measured share and the setting that packs denser; None otherwise."""
    if padding_fraction <= PADDING_WARNING_SHARE:
        return None
    share = f"{100 * padding_fraction:.0f}% of the positions in the batches are padding"
    if packing == "document":
        return (
            f"{share}: with data.packing=document each short document (a paragraph, a line) fills a "
            f"sequence of data.max_seq_length={max_seq_length} on its own; data.packing=packed puts "
            "whole documents together in one sequence"
        )
    return f"{share}: the documents are short next to data.max_seq_length={max_seq_length}; lower it"


def to_arrays(
    rows: list[tuple[list[int], int]], max_seq_length: int, pad_id: int, truncated: Truncated | None = None
) -> PackedSequences:
    """Sequences as padded arrays: int32 ids, int8 token types (1 from segment B on), lengths;
    ``truncated``, the builder's counts (``builder.truncated``), travels with them."""
    input_ids = np.full((len(rows), max_seq_length), pad_id, dtype=np.int32)
    token_type_ids = np.zeros((len(rows), max_seq_length), dtype=np.int8)
    lengths = np.zeros(len(rows), dtype=np.int32)
    for i, (ids, segment_a_end) in enumerate(rows):
        input_ids[i, : len(ids)] = ids
        token_type_ids[i, segment_a_end : len(ids)] = 1
        lengths[i] = len(ids)
    return PackedSequences(input_ids, token_type_ids, lengths, truncated or Truncated(max_seq_length))


def pack_documents(
    documents: Iterable[Sequence[Sentence]],
    max_seq_length: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    rng: random.Random | int = 0,
    single_segment_prob: float = 0.1,
    short_seq_prob: float = 0.05,
    mode: str = "document",
    segment_split: str = "released",
) -> PackedSequences:
    """Build all sequences of ``documents`` at once (see :class:`SequenceBuilder`); what was cut
    is in the result's ``truncated``."""
    builder = SequenceBuilder(
        max_seq_length,
        cls_id,
        sep_id,
        mode=mode,
        single_segment_prob=single_segment_prob,
        short_seq_prob=short_seq_prob,
        segment_split=segment_split,
    )
    if isinstance(rng, random.Random):
        builder.rng = rng
    else:
        builder.rng.seed(rng)
    rows = [row for document in documents for row in builder.add(document)]
    rows += builder.finish()
    return to_arrays(rows, max_seq_length, pad_id, builder.truncated)
