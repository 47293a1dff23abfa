"""LightningDataModule: corpus -> tokens -> packed sequences -> masked batches, three ways.

- in memory (default): the corpus is read, tokenized and packed at setup; whole documents are
  held out for validation, or in a corpus of few documents a share of the sequences
  (:mod:`~electra_lit.data.pretraining.holdout`); no held-out token is trained on;
- streaming (``streaming=true``): tokenized and packed on the fly, disjoint per rank and worker
  (:class:`StreamingSequences`); the first ``val_documents`` documents are held out;
- pre-tokenized (``shards=DIR``, from ``electra-prepare-data``): memory-mapped rows; a URL
  ``DIR`` (s3://, gs://) is read through a bounded local cache with prefetch
  (electra_lit.data.pretraining.shard_cache).

Loaders are torchdata ``StatefulDataLoader``s: Lightning stores their position in every
checkpoint, and with key-derived masks a resumed run sees the batches an uninterrupted run sees.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from itertools import islice
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import II
from tokenizers import Tokenizer
from torch.utils.data import Dataset, IterableDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from electra_lit.data.pretraining.corpus import Corpus
from electra_lit.data.pretraining.holdout import Split, document_split, holds_out_whole_documents, sequence_split
from electra_lit.data.pretraining.masking import MaskingCollator, MaskingConfig
from electra_lit.data.pretraining.packing import (
    PackedSequences,
    SequenceBuilder,
    check_packing,
    check_segment_split,
    pack_documents,
    padding_warning,
    truncation_warning,
)
from electra_lit.data.pretraining.shards import DEFAULT_CACHE_GB, ShardedSequences, read_meta, tokenizer_digest
from electra_lit.data.pretraining.streaming import StreamingSequences, document_hash
from electra_lit.data.tokenizer import SpecialTokenIds
from electra_lit.data.workers import worker_init
from electra_lit.errors import ConfigError
from electra_lit.ranks import gather_from_ranks, own_part
from electra_lit.storage import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)

DEFAULT_STREAMING_VAL_DOCUMENTS = 100
MIN_SEQ_LENGTH = 8


@dataclass
class DataConfig:
    """The ``data`` config of pretraining (and of electra-prepare-data and electra-tokenizer, which
    read its corpus and packing): Hydra builds ``_target_`` from it, with the tokenizer and the
    masking passed in by the run. Each data option sets the corpus."""

    _target_: str = "electra_lit.data.PretrainDataModule"  # the class built from this node
    corpus: Any = None  # where the documents come from, a node with its own _target_; each data option sets it
    max_seq_length: int = 128  # tokens per sequence, [CLS] and [SEP] included
    batch_size: int | None = None  # sequences per batch and device; null = derived from global_batch_size by the run
    num_workers: int = 2  # loader processes; 0 loads in the training process
    # document: a sequence never spans two documents (ELECTRA) | packed: whole documents share one
    packing: str = "document"
    single_segment_prob: float = 0.1  # sequences with segment A only
    short_seq_prob: float = 0.05  # sequences with a random shorter target length
    # how sentences split into segments A and B: released (ELECTRA's rule; A may overshoot half and take a
    # later short sentence) | prefix (A: the leading sentences within half the target, B: the rest)
    segment_split: str = "released"
    # in memory: share of documents held out for validation; a corpus of fewer than 1/val_fraction
    # documents holds out this share of its sequences instead (at least one batch), not a whole document
    val_fraction: float = 0.02
    # held-out documents, a count instead of val_fraction (streamed and prepared: the first N; null = 100)
    val_documents: int | None = None
    streaming: bool = False  # tokenize and pack on the fly, disjoint per rank and worker (large corpora)
    shuffle_buffer: int = 0  # streaming hub datasets: shuffle rows in a buffer (resume is then approximate)
    shards: Any = None  # a folder from electra-prepare-data (pre-tokenized, memory-mapped), or several read as one: a list, their parent folder or a glob; local paths or URLs (s3://, gs://)
    # data.shards on object storage: local disk (GB) for copies of its shard files under cache_dir, filled in the
    # background while training; rows of files not copied are read by byte range (0 = read every row from the store)
    shard_cache_gb: float = DEFAULT_CACHE_GB
    seed: int = II("seed")  # seeds the document split, packing, shuffling and masking; default: the run's seed
    # the run's cache_dir, where copies of remote shard files go (under remote/); derived, leave it as it is
    cache_dir: str = II("cache_dir")

    def __post_init__(self) -> None:
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise ConfigError(f"data.max_seq_length={self.max_seq_length} must be at least {MIN_SEQ_LENGTH}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(
                f"data.batch_size={self.batch_size} must be a positive integer, or null to derive "
                "it from global_batch_size"
            )
        check_packing(self.packing)
        check_segment_split(self.segment_split)
        for key in ("single_segment_prob", "short_seq_prob"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"data.{key}={getattr(self, key)} is outside [0, 1]")
        if self.shard_cache_gb < 0:
            raise ConfigError(
                f"data.shard_cache_gb={self.shard_cache_gb} is negative; give the GB of local disk for remote "
                "shard files, or 0 to read every row from the store"
            )


class SequenceDataset(Dataset):
    """Packed sequences (in memory or sharded) as examples
    ``{"key", "input_ids", "token_type_ids", "attention_mask"}``; the key is the row index."""

    def __init__(self, sequences: PackedSequences | ShardedSequences):
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        return self._example(index, *self.sequences.row(index))

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's examples (what the loader asks for): sharded rows are read together, so a
        remote shard's uncached rows cost one round of concurrent requests, not one per row."""
        if isinstance(self.sequences, ShardedSequences):
            rows = self.sequences.rows(indices)
        else:
            rows = [self.sequences.row(index) for index in indices]
        return [self._example(index, *row) for index, row in zip(indices, rows, strict=True)]

    @staticmethod
    def _example(index: int, input_ids: np.ndarray, token_type_ids: np.ndarray, length: int) -> dict:
        attention_mask = (np.arange(len(input_ids)) < length).astype(np.int8)
        return {
            "key": index,
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
        }


class PerRankLoader(StatefulDataLoader):
    """A ``StatefulDataLoader`` whose checkpointed state holds every rank's position, so that each
    rank of a multi-process run resumes its own part of the data (Lightning saves rank 0's only)."""

    def state_dict(self) -> dict:
        return {"per_rank": gather_from_ranks(super().state_dict())}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(own_part(state["per_rank"], "data positions"))


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
    """Masked pretraining batches from a corpus (in memory or streamed) or from prepared shards.

    Args:
        corpus: where the text comes from (``None`` with ``shards``).
        tokenizer: a ``tokenizers.Tokenizer`` holding [PAD] [UNK] [CLS] [SEP] [MASK].
        masking: the collator's :class:`MaskingConfig` (or its fields), or a callable building the
            collator from ``special_token_ids``, ``max_seq_length``, ``vocab_size`` and ``seed``.
        max_seq_length: tokens per sequence, [CLS]/[SEP] included.
        batch_size: sequences per batch (per device); ``electra-pretrain`` sets it from the global batch
            (electra_lit.runs.batch) before fit, which is when it is first read.
        num_workers: loader worker processes (0 loads in the training process).
        val_fraction: in memory, share of documents held out for validation (at least one); in a
            corpus of fewer than ``1 / val_fraction`` documents, share of the sequences instead
            (at least one batch; electra_lit.data.pretraining.holdout).
        val_documents: whole documents held out, a number instead of ``val_fraction`` (streaming:
            the first ones; default 100).
        packing: ``document`` (ELECTRA's builder) or ``packed`` (whole documents concatenated).
        single_segment_prob / short_seq_prob: the sequence builder's rates.
        segment_split: how sentences split into segments A and B: ``released`` (ELECTRA's rule) or
            ``prefix`` (electra_lit.data.pretraining.packing).
        streaming: tokenize and pack on the fly instead of at setup.
        shuffle_buffer: streaming hub datasets: rows shuffled in a buffer of this size.
        shards: a folder written by ``electra-prepare-data`` (then ``corpus`` is unused), or several
            read as one: a list, their parent folder or a glob (electra_lit.data.pretraining.shards);
            local paths or URLs.
        seed: seeds the document split, packing, shuffling and masking.
        shard_cache_gb: remote shards: local disk (GB) for copies of their files
            (electra_lit.data.pretraining.shard_cache).
        cache_dir: where remote shard files are copied (under ``remote/``).
    """

    def __init__(
        self,
        corpus: Corpus | None,
        tokenizer: Tokenizer,
        masking: MaskingConfig | Mapping[str, Any] | Callable[..., MaskingCollator],
        max_seq_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 2,
        val_fraction: float = 0.02,
        val_documents: int | None = None,
        packing: str = "document",
        single_segment_prob: float = 0.1,
        short_seq_prob: float = 0.05,
        segment_split: str = "released",
        streaming: bool = False,
        shuffle_buffer: int = 0,
        shards: str | Sequence[str] | None = None,
        seed: int = 0,
        shard_cache_gb: float = DEFAULT_CACHE_GB,
        cache_dir: str = DEFAULT_CACHE_DIR,
    ):
        super().__init__()
        if corpus is None and shards is None:
            raise ConfigError("data: give a corpus (data.corpus) or prepared shards (data.shards=DIR)")
        self.corpus, self.tokenizer, self.shards = corpus, tokenizer, shards
        self.special_token_ids = SpecialTokenIds.from_tokenizer(tokenizer)
        if isinstance(masking, Mapping):  # MaskingConfig's fields, e.g. from a saved config.yaml
            masking = MaskingConfig(**masking)
        if isinstance(masking, MaskingConfig):
            masking = partial(MaskingCollator, **asdict(masking))
        self.collator = masking(
            special_token_ids=self.special_token_ids,
            max_seq_length=max_seq_length,
            vocab_size=tokenizer.get_vocab_size(),
            seed=seed,
        )
        self.max_seq_length, self.batch_size, self.num_workers = max_seq_length, batch_size, num_workers
        self.val_fraction, self.val_documents = val_fraction, val_documents
        self.builder_args = dict(
            max_seq_length=max_seq_length,
            cls_id=self.special_token_ids.cls,
            sep_id=self.special_token_ids.sep,
            mode=packing,
            single_segment_prob=single_segment_prob,
            short_seq_prob=short_seq_prob,
            segment_split=segment_split,
        )
        SequenceBuilder(**self.builder_args)  # refuse a bad packing mode or segment split now
        self.streaming, self.shuffle_buffer, self.seed = streaming, shuffle_buffer, seed
        self.shard_cache_gb, self.cache_dir = shard_cache_gb, cache_dir
        self.train_set: Dataset | None = None
        self.val_set: SequenceDataset | None = None

    # ------------------------------------------------------------ setup, one way per source
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.shards:
            self._setup_shards()
        elif self.streaming:
            self._setup_streaming()
        else:
            self._setup_in_memory()
        if len(self.val_set) == 0:
            raise ConfigError("the validation split is empty; hold out more (data.val_fraction, data.val_documents)")

    def _pack(self, documents: list[list[list[int]]], seed: int) -> PackedSequences:
        return pack_documents(
            documents, rng=random.Random(seed), pad_id=self.special_token_ids.pad, **self.builder_args
        )

    def _setup_in_memory(self) -> None:
        documents = list(self.corpus.documents())
        if not documents:
            raise ConfigError(f"{self.corpus.description} yields no document; pretraining needs text")
        tokenized = tokenize_documents(self.tokenizer, documents)
        split = self._split_in_memory(documents, tokenized)
        train, val = split.train, split.val
        if warning := truncation_warning(train.truncated + val.truncated):
            log.warning(warning)  # before the error below, which a 5 MB line without sentence ends explains
        if len(train) < self.batch_size:
            raise ConfigError(
                f"{self.corpus.description}: {len(train)} training sequences"
                f"{' (its documents tokenize to nothing)' if len(train) == 0 else ''}, fewer than "
                f"data.batch_size={self.batch_size}; lower data.batch_size or use a larger corpus"
            )
        self.train_set = SequenceDataset(train)
        self.val_set = SequenceDataset(val)
        log.info(
            "Data: %d train / %d validation sequences of %d tokens from %d documents (%.1f%% padding)",
            len(self.train_set),
            len(self.val_set),
            self.max_seq_length,
            len(documents),
            100 * train.padding_fraction(),
        )
        log.info(split.line())
        self._warn_on_padding(train.padding_fraction())

    def _split_in_memory(self, documents: list[list[str]], tokenized: list[list[list[int]]]) -> Split:
        """Whole documents held out, or in a corpus of few documents a share of the sequences
        (electra_lit.data.pretraining.holdout)."""
        if not holds_out_whole_documents(len(documents), self.val_fraction, self.val_documents):
            packed = self._pack(tokenized, self.seed)
            return sequence_split(packed, self.val_fraction, self.batch_size, self.seed, len(documents))
        num_val = self.val_documents or max(1, round(self.val_fraction * len(documents)))
        train, val, held_out = document_split(documents, num_val, self.seed)
        return Split(
            self._pack([tokenized[i] for i in train], self.seed),
            self._pack([tokenized[i] for i in val], self.seed + 1),
            held_out,
        )

    def _warn_on_padding(self, padding_fraction: float) -> None:
        if warning := padding_warning(padding_fraction, self.builder_args["mode"], self.max_seq_length):
            log.warning(warning)

    def _setup_streaming(self) -> None:
        self.corpus.check()
        wanted = self.val_documents or DEFAULT_STREAMING_VAL_DOCUMENTS
        held_out = list(islice(self.corpus.documents(), wanted + 1))
        if len(held_out) <= wanted:
            raise ConfigError(
                f"{self.corpus.description} has {len(held_out)} documents and the first {wanted} are held out for "
                "validation; lower data.val_documents, or use data.streaming=false for a corpus this small"
            )
        held_out = held_out[:wanted]
        val = self._pack(tokenize_documents(self.tokenizer, held_out), self.seed + 1)
        if warning := truncation_warning(val):
            log.warning(warning)
        self.val_set = SequenceDataset(val)
        self.train_set = StreamingSequences(
            self.corpus,
            self.tokenizer,
            self.builder_args,
            pad_id=self.special_token_ids.pad,
            exclude={document_hash(d) for d in held_out},
            seed=self.seed,
            shuffle_buffer=self.shuffle_buffer,
        )
        log.info(
            "Data: streaming %s; %d validation sequences (%s tokens) from the first %d documents, held out "
            "(data.val_documents changes how many)",
            self.corpus.description,
            len(self.val_set),
            f"{val.tokens():,}",
            len(held_out),
        )
        self._warn_on_padding(val.padding_fraction())  # the held-out documents are packed as training's are

    def _setup_shards(self) -> None:
        meta = read_meta(self.shards)
        if meta["tokenizer"] != tokenizer_digest(self.tokenizer):
            raise ConfigError(
                f"data.shards={self.shards} was prepared with another tokenizer; use it: "
                f"tokenizer=pretrained tokenizer.path={meta['folders'][0]}/tokenizer"
            )
        if meta["max_seq_length"] != self.max_seq_length:
            raise ConfigError(
                f"data.max_seq_length={self.max_seq_length} but data.shards={self.shards} holds sequences "
                f"of {meta['max_seq_length']}; set data.max_seq_length={meta['max_seq_length']}"
            )
        cache = dict(cache_dir=self.cache_dir, cache_gb=self.shard_cache_gb)
        self.train_set = SequenceDataset(ShardedSequences(self.shards, "train", **cache))
        self.val_set = SequenceDataset(ShardedSequences(self.shards, "validation", **cache))
        log.info(
            "Data: %d train / %d validation sequences of %d tokens from %s",
            len(self.train_set),
            len(self.val_set),
            self.max_seq_length,
            self.shards,
        )
        train = meta["splits"]["train"]
        self._warn_on_padding(1 - train["tokens"] / max(1, train["rows"] * self.max_seq_length))

    # ------------------------------------------------------------ loaders
    def _loader(self, dataset: Dataset, shuffle: bool, batch_size: int | None = None) -> PerRankLoader:
        shuffle = shuffle and not isinstance(dataset, IterableDataset)
        return PerRankLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            drop_last=True,  # every batch has the same shape
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collator,
            worker_init_fn=worker_init(self.trainer.global_rank if self.trainer else 0),  # workers ignore SIGTERM
            generator=torch.Generator().manual_seed(self.seed),  # leaves the global RNG to the model
            pin_memory=torch.cuda.is_available(),
            # workers send their state every 32 batches, not every batch (faster); a checkpoint
            # between two snapshots resumes by replaying the batches since the last one
            snapshot_every_n_steps=32,
        )

    def train_dataloader(self) -> PerRankLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> PerRankLoader:
        # a small corpus's few held-out documents may not fill a batch on each rank: then they are
        # one smaller batch per rank
        per_rank = len(self.val_set) // (self.trainer.world_size if self.trainer else 1)
        return self._loader(self.val_set, shuffle=False, batch_size=max(1, min(self.batch_size, per_rank)))
