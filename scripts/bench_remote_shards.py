"""Tokens per second the pretraining loader feeds from shards on S3 against the same shards on disk.

    python scripts/bench_remote_shards.py [--batches 200] [--uncached-batches 10] [--workers 2]
        [--batch-size 128] [--seq-len 128] [--rows-per-shard 2048] [--endpoint URL --bucket s3://NAME]

Prepares the built-in corpus into local shards, puts them in a bucket, and times the training
loader (StatefulDataLoader + masking collator, as in training) over the same rows four ways:

- ``local``: the shards on disk (memory-mapped);
- ``s3, cold cache``: an empty cache of the default budget; rows come by byte range while the
  prefetch threads copy files in;
- ``s3, warm cache``: every file already copied (the second epoch, or the next run, on this machine);
- ``s3, no cache``: ``data.shard_cache_gb=0``, every row by byte range (``--uncached-batches``
  batches: it is the slow one).

Without ``--endpoint`` it starts moto's S3 server on 127.0.0.1 (tests/s3_server.py), a stand-in for
a real store: its latency and bandwidth are not S3's, so the ratios say how much the cache and
prefetch hide, not what a cloud bucket gives. With ``--endpoint`` the credentials come from the
usual AWS variables. Prints a markdown table; tokens count every position of the fixed-shape batches.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from hydra import compose, initialize_config_module

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit import storage
from electra_lit.data import PretrainDataModule, load_tokenizer
from electra_lit.data.pretraining.masking import MaskingConfig
from electra_lit.data.pretraining.prepare import prepare

S3_SERVER = Path(__file__).resolve().parents[1] / "tests" / "s3_server.py"


def start_moto(stack: ExitStack) -> str:
    """moto's server on 127.0.0.1 (tests/s3_server.py, loaded by path), its variables set here; a new bucket."""
    spec = importlib.util.spec_from_file_location("s3_server", S3_SERVER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["s3_server"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    server = stack.enter_context(module.s3_server())
    os.environ.update(server.env)
    return server.new_bucket()


def prepare_shards(out: Path, cache_dir: Path, seq_len: int, rows_per_shard: int) -> None:
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        cfg = compose(
            "prepare_data",
            overrides=[
                f"out_dir={out}",
                f"cache_dir={cache_dir}",
                f"data.max_seq_length={seq_len}",
                f"rows_per_shard={rows_per_shard}",
                "tokenizer=bert_uncased",
                "run_dir=unused",
            ],
        )
    prepare(cfg)


def feed_rate(
    shards: str, tokenizer, args, cache_dir: Path, cache_gb: float, warm: bool = False, batches: int | None = None
) -> float:
    """Positions per second over ``batches`` training batches, loader start-up included."""
    wanted = batches or args.batches
    datamodule = PretrainDataModule(
        corpus=None,
        tokenizer=tokenizer,
        masking=MaskingConfig(),
        max_seq_length=args.seq_len,
        batch_size=args.batch_size,
        num_workers=args.workers,
        shards=shards,
        shard_cache_gb=cache_gb,
        cache_dir=str(cache_dir),
    )
    datamodule.setup("fit")
    cache = datamodule.train_set.sequences.cache
    if warm and cache is not None:
        cache.fill()
    start = time.perf_counter()
    positions, done = 0, 0
    while done < wanted:  # epochs, as training cycles them
        for batch in datamodule.train_dataloader():
            positions += batch["input_ids"].numel()
            done += 1
            if done == wanted:
                break
    return positions / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--uncached-batches", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rows-per-shard", type=int, default=2048)
    parser.add_argument("--endpoint", help="an S3-compatible endpoint (credentials from AWS_* variables)")
    parser.add_argument("--bucket", help="with --endpoint: an existing bucket, s3://NAME")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with ExitStack() as stack:
        if args.endpoint:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint
            bucket = args.bucket or parser.error("--endpoint needs --bucket")
        else:
            bucket = start_moto(stack)
        local = tmp / "shards"
        prepare_shards(local, tmp / "cache", args.seq_len, args.rows_per_shard)
        url = f"{bucket}/bench-{uuid.uuid4().hex[:8]}"
        storage.upload_tree(local, url)
        tokenizer = load_tokenizer(str(local / "tokenizer"))
        size = sum(p.stat().st_size for p in local.glob("*.npy")) / 1e6
        rates = {
            "local": feed_rate(str(local), tokenizer, args, tmp / "cache-local", 20.0),
            "s3, cold cache": feed_rate(url, tokenizer, args, tmp / "cache-cold", 20.0),
            "s3, warm cache": feed_rate(url, tokenizer, args, tmp / "cache-warm", 20.0, warm=True),
            "s3, no cache": feed_rate(url, tokenizer, args, tmp / "cache-none", 0.0, batches=args.uncached_batches),
        }
        print(
            f"\n{args.batches} batches ({args.uncached_batches} without cache) of {args.batch_size} x {args.seq_len}, "
            f"{args.workers} workers, "
            f"{size:.0f} MB of shard files ({args.rows_per_shard} rows per shard), "
            f"{'moto on 127.0.0.1' if not args.endpoint else args.endpoint}\n"
        )
        print("| source | tokens/s | vs local |\n|---|---:|---:|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.0f} | {rate / rates['local']:.2f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
