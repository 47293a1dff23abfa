"""What ``electra-prepare-data`` does: tokenize and pack a corpus once into memory-mapped shards.

Reads the configured corpus (any ``data`` option), holds out its first ``data.val_documents``
documents for validation, packs with the data option's settings and writes ``out_dir`` as
:mod:`electra_lit.data.pretraining.shards` describes, with a progress bar. ``meta.json`` is written last:
a folder without it is incomplete.
"""

from __future__ import annotations

import json
import os
import sys
from itertools import islice
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from electra_lit.data.pretraining.datamodule import DEFAULT_STREAMING_VAL_DOCUMENTS, tokenize_documents
from electra_lit.data.pretraining.packing import SequenceBuilder
from electra_lit.data.pretraining.shards import FORMAT, ShardWriter, tokenizer_digest
from electra_lit.data.tokenizer import SpecialTokenIds, save_tokenizer
from electra_lit.errors import ConfigError

DOCUMENTS_PER_CALL = 256  # documents tokenized together (the tokenizer parallelises a call)


def _batches(iterator, size):
    while batch := list(islice(iterator, size)):
        yield batch


def prepare(cfg: DictConfig) -> dict:
    """What ``electra-prepare-data`` does; returns the meta.json it wrote."""
    data = cfg.data
    if data.corpus is None:
        raise ConfigError("electra-prepare-data needs a corpus: data=austen, text, table or hub")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "meta.json").exists():
        raise ConfigError(f"out_dir={out} already holds shards (meta.json); choose another folder or remove it")
    tokenizer = instantiate(cfg.tokenizer)
    corpus = instantiate(data.corpus)
    corpus.check()
    special = SpecialTokenIds.from_tokenizer(tokenizer)
    args = dict(
        max_seq_length=data.max_seq_length,
        cls_id=special.cls,
        sep_id=special.sep,
        mode=data.packing,
        single_segment_prob=data.single_segment_prob,
        short_seq_prob=data.short_seq_prob,
    )
    builders = {
        "validation": SequenceBuilder(seed=cfg.seed + 1, **args),
        "train": SequenceBuilder(seed=cfg.seed, **args),
    }
    writers = {
        split: ShardWriter(out, split, data.max_seq_length, special.pad, cfg.rows_per_shard) for split in builders
    }
    held_out = data.val_documents or DEFAULT_STREAMING_VAL_DOCUMENTS

    documents = 0
    with tqdm(desc=f"Preparing {corpus.description}", unit=" documents", file=sys.stderr) as progress:
        for batch in _batches(iter(corpus.documents()), DOCUMENTS_PER_CALL):
            for ids in tokenize_documents(tokenizer, batch):
                split = "validation" if documents < held_out else "train"
                writers[split].add(builders[split].add(ids))
                documents += 1
            progress.update(len(batch))
    for split, builder in builders.items():
        writers[split].add(builder.finish())
    splits = {split: writer.close() for split, writer in writers.items()}
    if splits["train"]["rows"] == 0:
        raise ConfigError(
            f"{corpus.description}: no training sequences ({documents} documents, "
            f"{held_out} held out for validation); is the corpus large enough, or does it tokenize to nothing?"
        )

    save_tokenizer(tokenizer, out / "tokenizer")
    meta = {
        "format": FORMAT,
        "max_seq_length": data.max_seq_length,
        "vocab_size": tokenizer.get_vocab_size(),
        "tokenizer": tokenizer_digest(tokenizer),
        "packing": data.packing,
        "source": corpus.description,
        "documents": documents,
        "splits": splits,
    }
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / "meta.json")
    for split, info in splits.items():
        print(
            f"{split}: {info['rows']} sequences, {info['tokens']} tokens, {len(info['shards'])} shard(s), "
            f"{100 * info['padding_fraction']:.1f}% padding"
        )
    print(
        f"wrote {out}; train with: electra-pretrain data=shards data.shards={out} tokenizer=pretrained "
        f"tokenizer.path={out / 'tokenizer'} data.max_seq_length={data.max_seq_length}"
    )
    return meta
