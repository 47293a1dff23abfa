"""What ``electra-prepare-data`` does: tokenize and pack a corpus once into memory-mapped shards.

Reads the configured corpus (any ``data`` option) in order, holds out its first
``data.val_documents`` documents for validation, packs with the data option's settings and writes
``out_dir`` as :mod:`electra_lit.data.pretraining.shards` describes, with a progress bar.
``meta.json`` is written last: a folder without it is incomplete. An ``out_dir`` URL (s3://, gs://)
is written in a local staging folder (its mirror under ``cache_dir``) and then put there file by
file, meta.json last, so no reader takes a half-put folder for finished shards.

It scales out two ways:

- ``num_proc`` processes on one machine (default: every core). This process reads the documents'
  texts (cheap) and deals them out in chunks of about ``CHUNK_CHARS`` characters; a worker splits a
  chunk into sentences, tokenizes and packs it with a :class:`SequenceBuilder` of its own, seeded
  from (seed, split, shard_index, chunk number), and sends back padded arrays, which this process
  writes in corpus order. Chunks do not depend on ``num_proc``, so neither does the output.
- ``num_shards`` machines: each reads the whole corpus but tokenizes only its part, the training
  documents ``d`` (corpus order, from 0) with ``d % num_shards == shard_index``; ``shard_index=0``
  also takes the validation documents. Each writes its own ``out_dir``; ``data.shards`` reads the
  folders as one dataset, after checking that they fit together.

Workers are forked where the OS allows it (Linux): a spawned worker would import electra_lit,
torch and Lightning anew, seconds per worker, more than a small corpus takes to prepare. The pool
starts before this process has tokenized or read anything, so no tokenizer thread pool or reader
thread is forked; inside workers the tokenizer's own threads are off (TOKENIZERS_PARALLELISM=false),
the processes already use the cores. With ``num_proc=1`` all runs in this process and the
tokenizer uses its threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from tokenizers import Tokenizer
from tqdm import tqdm

from electra_lit import storage
from electra_lit.config.schema import validate_config
from electra_lit.data.pretraining.corpus import Corpus, sentences_of
from electra_lit.data.pretraining.datamodule import DEFAULT_STREAMING_VAL_DOCUMENTS, tokenize_documents
from electra_lit.data.pretraining.packing import (
    PackedSequences,
    SequenceBuilder,
    Truncated,
    padding_warning,
    to_arrays,
    truncation_warning,
)
from electra_lit.data.pretraining.shards import FORMAT, ShardWriter, tokenizer_digest
from electra_lit.data.tokenizer import SpecialTokenIds, save_tokenizer
from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 18  # text per chunk a worker tokenizes and packs (about 60k tokens; ~16 chunks in Austen)
CHUNKS_PER_PROCESS = 4  # chunks in flight per worker: keeps every worker busy while memory stays bounded
START_METHOD = "fork" if sys.platform == "linux" else "spawn"  # see the module docstring


# ------------------------------------------------------------------ the work of one chunk
@dataclass
class Chunk:
    """Consecutive documents of one split, as texts, and the seed of the builder that packs them."""

    split: str
    seed: int
    texts: list[str]


@dataclass
class Packed:
    """What a worker sends back for a chunk."""

    split: str
    documents: int
    arrays: PackedSequences


class ChunkPacker:
    """Splits a chunk's texts into sentences, tokenizes them in one batched call and packs them with
    a fresh builder: what each worker does, and this process when ``num_proc=1``."""

    def __init__(self, tokenizer: Tokenizer, builder_args: dict, pad_id: int):
        self.tokenizer, self.builder_args, self.pad_id = tokenizer, builder_args, pad_id

    def __call__(self, chunk: Chunk) -> Packed:
        documents = [sentences for sentences in map(sentences_of, chunk.texts) if sentences]
        builder = SequenceBuilder(seed=chunk.seed, **self.builder_args)
        rows = [row for ids in tokenize_documents(self.tokenizer, documents) for row in builder.add(ids)]
        rows += builder.finish()
        arrays = to_arrays(rows, self.builder_args["max_seq_length"], self.pad_id, builder.truncated)
        return Packed(chunk.split, len(chunk.texts), arrays)


_packer: ChunkPacker | None = None  # a worker process's own, set when it starts


def _start_worker(packer: ChunkPacker) -> None:
    """A worker's start: one tokenizer thread (the processes use the cores), Ctrl-C left to the
    parent, which stops the pool."""
    global _packer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _packer = packer


def _pack_in_worker(chunk: Chunk) -> Packed:
    return _packer(chunk)


def _in_order(pool, chunks: Iterable[Chunk], in_flight: int) -> Iterator[Packed]:
    """The pool's results in the order of ``chunks``, with at most ``in_flight`` chunks handed out
    (``Pool.imap`` would read the whole corpus into its queue)."""
    pending: deque = deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_pack_in_worker, (chunk,)))
        if len(pending) >= in_flight:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


@contextmanager
def packing_processes(packer: ChunkPacker, num_proc: int) -> Iterator[Callable[[Iterable[Chunk]], Iterator[Packed]]]:
    """A function from chunks to their results in order: ``num_proc`` worker processes, or this
    one for ``num_proc=1``. Leaving the block (an error, Ctrl-C) stops the workers."""
    if num_proc == 1:
        yield lambda chunks: map(packer, chunks)
        return
    context = multiprocessing.get_context(START_METHOD)
    with context.Pool(num_proc, initializer=_start_worker, initargs=(packer,)) as pool:
        yield lambda chunks: _in_order(pool, chunks, num_proc * CHUNKS_PER_PROCESS)


def available_cores() -> int:
    """The cores this process may run on (a job scheduler's share, not the whole machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ------------------------------------------------------------------ what this machine reads
def document_texts(corpus: Corpus) -> Iterator[str]:
    """The corpus's documents in order, as texts: what ``Corpus.documents`` yields before it
    splits sentences (the workers split them), counting undecodable bytes as it does."""
    replaced = 0
    for row in corpus.dataset():
        for text in corpus.texts(row):
            replaced += text.count("\ufffd")
            yield text
    if replaced:
        log.warning("%s: %d undecodable bytes were replaced by U+FFFD", corpus.description, replaced)


class Counted:
    """An iterator that counts what it yields (every document read, this machine's or not)."""

    def __init__(self, items: Iterable):
        self.items, self.count = iter(items), 0

    def __iter__(self) -> Counted:
        return self

    def __next__(self):
        item = next(self.items)
        self.count += 1
        return item


def chunk_seed(seed: int, split: str, shard_index: int, number: int) -> int:
    """A chunk's builder seed: its own random stream whatever process packs it."""
    return int(hashlib.sha256(f"{seed}/{split}/{shard_index}/{number}".encode()).hexdigest()[:16], 16)


def chunks(
    texts: Iterable[str], held_out: int, seed: int, shard_index: int = 0, num_shards: int = 1
) -> Iterator[Chunk]:
    """This machine's documents in chunks of about CHUNK_CHARS characters, one split each: the
    first ``held_out`` documents (validation, machine 0 only), then the training documents ``d``
    with ``d % num_shards == shard_index``."""
    numbers = {"validation": 0, "train": 0}
    current: Chunk | None = None
    size = 0
    for index, text in enumerate(texts):
        split = "validation" if index < held_out else "train"
        if (split == "validation" and shard_index != 0) or (split == "train" and index % num_shards != shard_index):
            continue
        if current is not None and (current.split != split or size >= CHUNK_CHARS):
            yield current
            current = None
        if current is None:
            current, size = Chunk(split, chunk_seed(seed, split, shard_index, numbers[split]), []), 0
            numbers[split] += 1
        current.texts.append(text)
        size += len(text)
    if current is not None:
        yield current


# ------------------------------------------------------------------ the command
def with_validation_checked(texts: Iterator[str], held_out: int, data: DictConfig, description: str) -> Iterator[str]:
    """``texts`` unchanged, once the corpus is known to have documents left for training after the
    first ``held_out``: else one line naming ``data.val_documents`` and a value that works, before
    any shard is written."""
    head = list(islice(texts, held_out + 1))
    if len(head) > held_out:
        return chain(head, texts)
    given = f"data.val_documents={held_out}" + ("" if data.val_documents else " (the default)")
    if len(head) < 2:
        raise ConfigError(
            f"{description} has {len(head)} document(s) and electra-prepare-data holds out whole documents for "
            "validation (the first data.val_documents); give it more documents, e.g. data.corpus.document=paragraph "
            "for text files"
        )
    works = max(1, round(data.val_fraction * len(head)))
    raise ConfigError(
        f"{description} has {len(head)} documents and {given} would hold out all of them for validation; "
        f"set data.val_documents={works} (the first {works} of {len(head)} documents)"
    )


@contextmanager
def removed_on_failure(out: Path, writers: dict[str, ShardWriter]) -> Iterator[None]:
    """A preparation that fails or is interrupted takes back what it wrote (shards, tokenizer/,
    and ``out`` itself if it made it): no folder of partial shards is left behind to be mistaken
    for data or resumed into."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_there = (out / "tokenizer").exists()
    try:
        yield
    except BaseException:
        for writer in writers.values():
            writer.remove()
        (out / "meta.json.tmp").unlink(missing_ok=True)
        if not tokenizer_there:
            shutil.rmtree(out / "tokenizer", ignore_errors=True)
        if made and not any(out.iterdir()):
            out.rmdir()
        raise


def prepare(cfg: DictConfig) -> dict:
    """What ``electra-prepare-data`` does; returns the meta.json it wrote."""
    settings = validate_config(cfg)
    data = cfg.data
    if data.corpus is None:
        raise ConfigError("electra-prepare-data needs a corpus: data=austen, text, table or hub")
    out = output_folder(str(cfg.out_dir), cfg.cache_dir)
    tokenizer = instantiate(cfg.tokenizer)
    special = SpecialTokenIds.from_tokenizer(tokenizer)
    builder_args = dict(
        max_seq_length=data.max_seq_length,
        cls_id=special.cls,
        sep_id=special.sep,
        mode=data.packing,
        single_segment_prob=data.single_segment_prob,
        short_seq_prob=data.short_seq_prob,
        segment_split=data.segment_split,
    )
    num_proc = settings.num_proc or available_cores()
    shard_index, num_shards = settings.shard_index, settings.num_shards
    part = f" (shard {shard_index} of {num_shards})" if num_shards > 1 else ""
    held_out = data.val_documents or DEFAULT_STREAMING_VAL_DOCUMENTS
    writers = {
        split: ShardWriter(out, split, data.max_seq_length, special.pad, cfg.rows_per_shard)
        for split in ("validation", "train")
    }

    documents = dict.fromkeys(writers, 0)
    truncated = Truncated(data.max_seq_length)
    # the workers start before the corpus is opened (see the module docstring)
    with (
        removed_on_failure(out, writers),
        packing_processes(ChunkPacker(tokenizer, builder_args, special.pad), num_proc) as pack,
    ):
        corpus = instantiate(data.corpus)
        corpus.check()  # imports datasets (a second or two): start-up, left out of the rate
        start, texts = time.perf_counter(), Counted(document_texts(corpus))
        checked = with_validation_checked(texts, held_out, data, corpus.description)
        with tqdm(desc=f"Preparing {corpus.description}{part}", unit=" documents", file=sys.stderr) as progress:
            for packed in pack(chunks(checked, held_out, cfg.seed, shard_index, num_shards)):
                writers[packed.split].add_arrays(packed.arrays)
                truncated += packed.arrays.truncated
                documents[packed.split] += packed.documents
                progress.update(packed.documents)
        splits = {split: {**writer.close(), "documents": documents[split]} for split, writer in writers.items()}
        seconds = time.perf_counter() - start
        if warning := truncation_warning(truncated):
            log.warning(warning)
        if splits["train"]["rows"] == 0:
            raise ConfigError(
                f"{corpus.description}{part}: no training sequences ({texts.count} documents, "
                f"{held_out} held out for validation); is the corpus large enough, or does it tokenize to nothing?"
            )
        save_tokenizer(tokenizer, out / "tokenizer")
        meta = {
            "format": FORMAT,
            "max_seq_length": data.max_seq_length,
            "vocab_size": tokenizer.get_vocab_size(),
            "tokenizer": tokenizer_digest(tokenizer),
            "packing": data.packing,
            "segment_split": data.segment_split,
            "source": corpus.description,
            "documents": sum(documents.values()),  # this folder's
            "corpus_documents": texts.count,
            "num_shards": num_shards,
            "shard_index": shard_index,
            "num_proc": num_proc,
            "splits": splits,
        }
        tmp = out / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out / "meta.json")
    if storage.is_remote(cfg.out_dir):
        publish(out, str(cfg.out_dir))
    report(meta, str(cfg.out_dir), seconds)
    return meta


def output_folder(out_dir: str, cache_dir: str) -> Path:
    """Where the shards are written: ``out_dir`` itself, or for a URL a staging folder (its mirror
    under ``cache_dir``, emptied first) that :func:`publish` puts there. Refuses an ``out_dir``
    that already holds shards, and a URL the store cannot take (storage.check_url, one line)."""
    if not storage.is_remote(out_dir):
        out = Path(out_dir)
        if (out / "meta.json").exists():
            raise ConfigError(f"out_dir={out} already holds shards (meta.json); choose another folder or remove it")
        return out
    storage.check_url(out_dir, "out_dir", must_exist=False)
    fs, path = storage.filesystem(out_dir, "out_dir")
    if fs.exists(storage.join(path, "meta.json")):
        raise ConfigError(f"out_dir={out_dir} already holds shards (meta.json); choose another folder or remove it")
    staging = storage.mirror_dir(out_dir, cache_dir)
    storage.remove_local(staging)  # what an earlier preparation that failed left
    return staging


def publish(staging: Path, url: str) -> None:
    """Put the prepared folder at ``url``: every file, then meta.json, the mark of finished shards,
    last (a reader refuses shard files without it as unfinished); then remove the staging folder."""
    count = storage.upload_tree(staging, url, skip=lambda relative: relative == Path("meta.json"))
    storage.upload(staging / "meta.json", storage.join(url, "meta.json"))
    log.info("Put %d files and meta.json to %s", count, url)
    shutil.rmtree(staging, ignore_errors=True)


def report(meta: dict, out: str, seconds: float) -> None:
    """The summary: each split, the rate (from the first document read to the last shard written),
    and how to train on the result."""
    for split, info in meta["splits"].items():
        print(
            f"{split}: {info['rows']} sequences, {info['tokens']} tokens, {len(info['shards'])} shard(s), "
            f"{100 * info['padding_fraction']:.1f}% padding"
        )
    tokens = sum(info["tokens"] for info in meta["splits"].values())
    validation = meta["splits"]["validation"]
    if validation["documents"]:  # machine 0's part only
        share = f", {100 * validation['tokens'] / max(1, tokens):.1f}% of the tokens" if meta["num_shards"] == 1 else ""
        print(
            f"validation: the first {validation['documents']} documents, held out whole{share}; "
            "data.val_documents changes how many"
        )
    if warning := padding_warning(meta["splits"]["train"]["padding_fraction"], meta["packing"], meta["max_seq_length"]):
        log.warning(warning)
    print(
        f"{tokens} tokens from {meta['documents']} documents tokenized and packed in {seconds:.1f} s "
        f"with num_proc={meta['num_proc']}: {tokens / max(seconds, 1e-9):,.0f} tokens/s"
    )
    folders = str(out)
    if meta["num_shards"] > 1:
        folders = f"'[{', '.join(f'DIR_{i}' for i in range(meta['num_shards']))}]' (every machine's out_dir)"
        print(f"wrote {out}, shard {meta['shard_index']} of {meta['num_shards']}")
    else:
        print(f"wrote {out}")
    print(
        f"train with: electra-pretrain data=shards data.shards={folders} tokenizer=pretrained "
        f"tokenizer.path={storage.join(out, 'tokenizer')} data.max_seq_length={meta['max_seq_length']}"
    )
