"""Which text the in-memory validation split gets, and the one line that says so.

A corpus of many documents holds out whole documents (``data.val_fraction`` of them, or
``data.val_documents``): no sequence of a held-out document is trained on, as in ELECTRA. A corpus
of few documents, a handful of books say, cannot: the smallest whole-document split, one book of
six, would take a sixth of the text instead of the 2% asked for, and validate on a book the model
never saw rather than on the corpus it trains on. There, fewer than ``1 / data.val_fraction``
documents and no ``data.val_documents``, the split takes ``data.val_fraction`` of the packed
sequences instead, at random from the whole corpus, at least one batch. Sequences share no token,
so no held-out text is trained on either way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from electra_lit.data.pretraining.packing import PackedSequences
from electra_lit.errors import ConfigError

SNIPPET_CHARS = 40  # of a held-out document's first sentence, enough to recognise it
SNIPPETS_SHOWN = 3  # held-out documents named in the line; more are only counted


@dataclass
class Split:
    """The train and validation sequences and what was held out, in words (for the log line)."""

    train: PackedSequences
    val: PackedSequences
    held_out: str

    def line(self) -> str:
        """What validation holds, its tokens and share of the corpus, and the keys that change it."""
        val_tokens, all_tokens = self.val.tokens(), self.val.tokens() + self.train.tokens()
        return (
            f"Validation: {self.held_out}: {len(self.val)} sequences, {val_tokens:,} tokens, "
            f"{100 * val_tokens / max(1, all_tokens):.1f}% of the corpus; change it with data.val_fraction "
            "(a share) or data.val_documents (a number of whole documents)"
        )


def holds_out_whole_documents(num_documents: int, val_fraction: float, val_documents: int | None) -> bool:
    """Whole documents when asked for by number, or when ``val_fraction`` of them is one or more."""
    return bool(val_documents) or val_fraction * num_documents >= 1


def document_split(documents: Sequence[list[str]], num_val: int, seed: int) -> tuple[list[int], list[int], str]:
    """``num_val`` documents at random (seeded): the train and validation indices, each in corpus
    order, and the words naming what was held out."""
    if num_val >= len(documents):
        raise ConfigError(
            f"data.val_documents={num_val} holds out every one of the corpus's {len(documents)} documents; "
            f"set data.val_documents below {len(documents)}, or to null to hold out data.val_fraction"
        )
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    val, train = sorted(order[:num_val]), sorted(order[num_val:])
    named = ", ".join(f'"{_snippet(documents[i])}"' for i in val[:SNIPPETS_SHOWN])
    more = f" and {num_val - SNIPPETS_SHOWN} more" if num_val > SNIPPETS_SHOWN else ""
    return train, val, f"{num_val} of {len(documents)} documents held out whole ({named}{more})"


def sequence_split(
    packed: PackedSequences, val_fraction: float, batch_size: int, seed: int, num_documents: int
) -> Split:
    """``val_fraction`` of the sequences, at least one batch, at random (seeded) from all of them;
    at most half of them, so that a corpus too small for two batches is refused by the check of
    the training split (which names the batch size, or documents that tokenize to nothing)."""
    num_val = min(max(batch_size, round(val_fraction * len(packed))), len(packed) // 2)
    val = sorted(random.Random(seed).sample(range(len(packed)), num_val))
    train = sorted(set(range(len(packed))) - set(val))
    held_out = (
        f"a random {100 * num_val / max(1, len(packed)):.1f}% of the sequences, from all {num_documents} documents "
        f"(data.val_fraction={val_fraction:g} of {num_documents} documents is less than a whole one)"
    )
    return Split(packed.select(train), packed.select(val), held_out)


def _snippet(sentences: list[str]) -> str:
    text = (sentences[0] if sentences else "").lstrip("\"'\u201c\u2018_( ")
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3].rstrip() + "..."
