"""Tokens per second each data path feeds: StatefulDataLoader + the masking collator, as in training.

    python scripts/benchmark_data.py [--batches 300] [--workers 2] [--batch-size 128] [--seq-len 128]

Paths: ``shards`` (pre-tokenized, memory-mapped; prepared here from the built-in corpus, and that
preparation's raw-text rate is reported as ``prepare``), ``in_memory`` (the built-in corpus
packed at setup) and ``streaming`` (raw text tokenized and packed on the fly). Prints one JSON
line per path: tokens_per_s counts every position of the fixed-shape batches (what a GPU step
consumes), real_tokens_per_s the non-padding ones. An H100 consumes about 1.4M tokens/s at
ELECTRA-Small (../shared/bench/README.md), so a path should feed more than that.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit.data.pretraining.corpus import builtin_corpus_dir
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.runs.pretrain import build_datamodule


def feed_rate(datamodule, batches: int, warmup: int = 10) -> dict:
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()

    def epochs():  # the built-in corpus is a few dozen batches: cycle as training does
        while True:
            yield from loader

    iterator = epochs()
    for _ in range(warmup):  # worker start-up is not throughput
        next(iterator)
    positions = real = 0
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        positions += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": round(positions / seconds),
        "real_tokens_per_s": round(real / seconds),
        "batches": batches,
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = [
        f"data.max_seq_length={args.seq_len}",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.workers}",
    ]

    def compose_pretrain(*overrides):
        with initialize_config_module("electra_lit.conf", version_base="1.3"):
            return compose(
                "pretrain",
                overrides=[
                    f"run_dir={tmp / 'run'}",
                    f"cache_dir={tmp / 'cache'}",
                    "tokenizer=bert_uncased",
                    *data,
                    *overrides,
                ],
            )

    def datamodule(cfg):
        return build_datamodule(cfg, instantiate(cfg.tokenizer))

    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        prepare_cfg = compose(
            "prepare_data",
            overrides=[
                f"out_dir={tmp / 'shards'}",
                "data.val_documents=20",
                f"data.max_seq_length={args.seq_len}",
                "run_dir=unused",
            ],
        )
    start = time.perf_counter()
    meta = prepare(prepare_cfg)
    seconds = time.perf_counter() - start
    tokens = sum(split["tokens"] for split in meta["splits"].values())
    results = [
        {
            "path": "prepare",
            "real_tokens_per_s": round(tokens / seconds),
            "tokens": tokens,
            "seconds": round(seconds, 2),
        }
    ]

    paths = {
        "shards": [
            "data=shards",
            f"data.shards={tmp / 'shards'}",
            "tokenizer=pretrained",
            f"tokenizer.path={tmp / 'shards' / 'tokenizer'}",
        ],
        "in_memory": ["data.val_documents=20"],
        "streaming": [
            "data=text",
            f"data.corpus.paths={builtin_corpus_dir()}",
            "data.corpus.document=chapter",
            "data.streaming=true",
            "data.val_documents=20",
        ],
    }
    for name, overrides in paths.items():
        results.append(
            {"path": name, "workers": args.workers, **feed_rate(datamodule(compose_pretrain(*overrides)), args.batches)}
        )
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
