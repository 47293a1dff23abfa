"""Streaming pretraining data: documents from a ``datasets`` stream, tokenized and packed on the fly.

For corpora too large to prepare in memory (a hub dataset of billions of tokens). Each DDP rank
reads its part (``datasets.distributed.split_dataset_by_node``) and each loader worker a part of
that (``datasets`` shards its files over the workers). Every pass over the corpus is an epoch;
local files are read in a new order each epoch (seed + epoch), hub datasets can add a shuffle
buffer (``shuffle_buffer``; its contents are not in checkpoints, so resume is then approximate).

Resume is exact otherwise: the state saved in checkpoints (per worker, by torchdata's
``StatefulDataLoader``) is taken at row boundaries: the stream's position, the sequence
builder's state and how many sequences of the current row were already fed. A restored stream
re-reads that row and skips those, so its next sequence is the one an uninterrupted run feeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from torch.utils.data import IterableDataset, get_worker_info

from electra_lit.data.pretraining.corpus import Corpus, sentences_of
from electra_lit.data.pretraining.packing import SequenceBuilder
from electra_lit.errors import ConfigError
from electra_lit.ranks import rank_and_world

# Reported as the dataset's length: a sized dataset keeps Lightning from prefetching a batch,
# which would otherwise be one batch ahead of the model in every checkpoint.
NOMINAL_LENGTH = 2**40


def document_hash(sentences: list[str]) -> str:
    return hashlib.blake2b("\n".join(sentences).encode(), digest_size=8).hexdigest()


def _seed(*parts: int) -> int:
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StreamingSequences(IterableDataset):
    """An endless stream of packed sequences ``{"key", "input_ids", "token_type_ids", "attention_mask"}``.

    Args:
        corpus: the source.
        tokenizer: a ``tokenizers.Tokenizer``.
        builder: :class:`SequenceBuilder` arguments but the seed (``max_seq_length``, ``cls_id``,
            ``sep_id``, ``mode``, ``single_segment_prob``, ``short_seq_prob``).
        pad_id: the padding token.
        exclude: hashes of held-out (validation) documents, skipped here.
        seed: seeds file order, shuffling, packing and keys.
        shuffle_buffer: hub datasets: shuffle rows in a buffer of this size (0: no).
        rank, world_size: this process's part; None = from torch.distributed (1 part without it).
    """

    def __init__(
        self,
        corpus: Corpus,
        tokenizer: Tokenizer,
        builder: dict[str, Any],
        pad_id: int,
        exclude: set[str] = frozenset(),
        seed: int = 0,
        shuffle_buffer: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        self.corpus, self.tokenizer, self.builder_args, self.pad_id = corpus, tokenizer, builder, pad_id
        self.exclude, self.seed, self.shuffle_buffer = set(exclude), seed, shuffle_buffer
        self.rank, self.world_size = rank, world_size
        self._restore: dict[str, Any] | None = None
        self._snapshot: dict[str, Any] = {}
        self._fed = 0

    def __len__(self) -> int:
        return NOMINAL_LENGTH

    # ------------------------------------------------------------ torchdata Stateful protocol
    def state_dict(self) -> dict[str, Any]:
        return {"snapshot": self._snapshot, "fed": self._fed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restore = {**state["snapshot"], "fed": state["fed"]} if state.get("snapshot") else None

    # ------------------------------------------------------------ the stream
    def _source(self, epoch: int, rank: int, world_size: int):
        from datasets.distributed import split_dataset_by_node

        files = list(self.corpus.files)
        random.Random(_seed(self.seed, epoch)).shuffle(files)
        source = self.corpus.dataset(files or None)
        if self.shuffle_buffer > 0:
            source = source.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
            source.set_epoch(epoch)
        return split_dataset_by_node(source, rank=rank, world_size=world_size) if world_size > 1 else source

    def _example(self, ids: list[int], segment_a_end: int, key: int) -> dict:
        length = self.builder_args["max_seq_length"]
        input_ids = np.full(length, self.pad_id, dtype=np.int32)
        input_ids[: len(ids)] = ids
        token_type_ids = np.zeros(length, dtype=np.int8)
        token_type_ids[segment_a_end : len(ids)] = 1
        attention_mask = (np.arange(length) < len(ids)).astype(np.int8)
        return {"key": key, "input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}

    def _sequences_of(self, row: dict, builder: SequenceBuilder) -> list[tuple[list[int], int]]:
        sequences = []
        for text in self.corpus.texts(row):
            sentences = sentences_of(text)
            if not sentences or document_hash(sentences) in self.exclude:
                continue
            ids = [e.ids for e in self.tokenizer.encode_batch(sentences, add_special_tokens=False)]
            sequences += builder.add(ids)
        return sequences

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        worker_id = worker.id if worker else 0
        rank, world_size = (self.rank, self.world_size or 1) if self.rank is not None else rank_and_world()
        restore, self._restore = self._restore, None
        epoch = restore["epoch"] if restore else 0
        while True:
            source = self._source(epoch, rank, world_size)
            builder = SequenceBuilder(seed=_seed(self.seed, epoch, rank, worker_id), **self.builder_args)
            count, skip, rows_read, resumed = 0, 0, 0, restore is not None
            if restore:
                source.load_state_dict(restore["source"])
                builder.load_state_dict(restore["builder"])
                count, skip, restore = restore["count"], restore["fed"], None
            rows = iter(source)

            # built() is consumed within this pass and reads its live values (count) on purpose
            def built():
                """This pass's sequences; before each row, the state a checkpoint resumes from."""
                nonlocal rows_read
                while True:
                    self._snapshot = {
                        "epoch": epoch,
                        "source": source.state_dict(),
                        "builder": builder.state_dict(),
                        "count": count,
                    }
                    self._fed = 0
                    try:
                        row = next(rows)
                    except StopIteration:
                        break
                    rows_read += 1
                    yield from self._sequences_of(row, builder)
                yield from builder.finish()

            for ids, segment_a_end in built():
                count += 1
                if skip:
                    skip -= 1
                    continue
                self._fed += 1
                yield self._example(ids, segment_a_end, _seed(self.seed, epoch, rank, worker_id, count))
            if rows_read == 0 and not resumed:
                return  # this worker has no part of the corpus: end instead of spinning
            if count == 0:
                raise ConfigError(
                    f"{self.corpus.description}: a pass over this part of the corpus gave no training sequence; "
                    f"all of its documents are held out for validation (data.val_documents={len(self.exclude)}"
                    " at most) or tokenize to nothing"
                )
            epoch += 1
