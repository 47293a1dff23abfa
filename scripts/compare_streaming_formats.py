"""Our shard format against LitData and MosaicML Streaming, read from a local S3-compatible server.

    python scripts/compare_streaming_formats.py [--seq-len 128] [--batch-size 64] [--workers 2]
                                                [--rows-per-shard 1024] [--formats electra,litdata,mosaic]

Starts moto's S3 server on 127.0.0.1 (tests/s3_server.py), prepares the built-in Austen corpus with
``electra-prepare-data`` into our shard folder, writes the same packed training rows (plus each
row's index) with LitData's ``BinaryWriter`` and Streaming's ``MDSWriter`` in chunks of about the
same size, uploads all three to one bucket, and for each format measures:

- tokens/s over one epoch of the training rows (every position of the ``batch x seq`` batches
  counts), shuffled, ``--workers`` loader processes, default collation (no masking, so the formats
  are compared on reading alone): ``cold`` from an empty local cache, ``warm`` a second epoch with
  the cache filled by the first;
- exact resume: a loader stopped after ``RESUME_AT`` batches of an epoch gives its ``state_dict``;
  a new loader (new dataset object too) restored from it must give the same next ``RESUME_CHECK``
  batches, row for row (the ``index`` column) and token for token, as the uninterrupted loader;
- sharding: world_size 2 is simulated (rank by rank, in this process) with ``--workers`` loader
  workers each; over one epoch, the row indices of both ranks together are checked against the
  split (missing, seen more than once), and rank 0's epoch is read twice to check its order is the
  same.

How each format learns its rank: ours as Lightning gives it, a ``DistributedSampler(num_replicas=2,
rank=r, seed=seed)`` in the ``StatefulDataLoader`` (Lightning injects that sampler); LitData from
the ``WORLD_SIZE``/``GLOBAL_RANK`` variables (what it reads when torch.distributed is not up);
Streaming from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` (two nodes of one rank).

moto on 127.0.0.1 is not S3: its latency and bandwidth differ, so the numbers compare the readers'
overheads on one machine, not what a cloud bucket gives. Needs ``pip install litdata
mosaicml-streaming`` (see the report for the dependencies they pull); a format whose package does
not import is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import types
import uuid
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

import electra_lit  # noqa: F401  registers the config resolvers
from electra_lit import storage
from electra_lit.data.pretraining.datamodule import SequenceDataset
from electra_lit.data.pretraining.shards import ShardedSequences

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts are files, not a package
from bench_remote_shards import prepare_shards, start_moto  # noqa: E402

SEED = 1234
RESUME_AT = 5  # batches read before the state is saved
RESUME_CHECK = 5  # batches compared after restoring


# ------------------------------------------------------------------ the data
@dataclass
class Rows:
    """The training split's packed rows, as our shards hold them."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def item(self, index: int) -> dict:
        return {
            "index": index,
            "input_ids": self.input_ids[index],
            "token_type_ids": self.token_type_ids[index],
            "length": int(self.lengths[index]),
        }


def prepare_rows(out: Path, cache_dir: Path, seq_len: int, rows_per_shard: int) -> Rows:
    """The built-in corpus prepared as our shards (bench_remote_shards.prepare_shards), and its rows."""
    prepare_shards(out, cache_dir, seq_len, rows_per_shard)
    stems = sorted(p.name.removesuffix(".input_ids.npy") for p in out.glob("train-*.input_ids.npy"))
    columns = [np.concatenate([np.load(out / f"{s}.{c}.npy") for s in stems]) for c in ("input_ids", "token_type_ids")]
    lengths = np.concatenate([np.load(out / f"{s}.lengths.npy") for s in stems])
    return Rows(*columns, lengths)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ------------------------------------------------------------------ the formats
class Format:
    """One way of storing and reading the rows: ``write`` puts them in a bucket; ``loader`` gives a
    loader over one epoch of them (shuffled), with ``state_dict``/``load_state_dict``."""

    name = ""
    notes = ""

    def write(self, rows: Rows, local: Path, url: str, chunk_bytes: int) -> None: ...

    def loader(self, cache: Path, batch_size: int, workers: int, rank: int = 0, world_size: int = 1): ...

    def release(self) -> None:
        """Free what a loader of this format holds between measurements."""
        gc.collect()

    def epoch_by_rank(self, cache: Path, args, world_size: int) -> list[np.ndarray]:
        """Row indices of one epoch per rank, read rank after rank in this process."""
        order = []
        for rank in range(world_size):
            loader = self.loader(cache / f"rank{rank}", args.batch_size, args.workers, rank, world_size)
            order.append(np.concatenate([keys(batch) for batch in loader]))
            del loader
            self.release()
        return order


class Ours(Format):
    name = "electra_lit shards"

    def __init__(self, local: Path):
        self.local = local  # the folder electra-prepare-data wrote

    def write(self, rows, local, url, chunk_bytes):
        storage.upload_tree(self.local, url)
        self.url = url

    def loader(self, cache, batch_size, workers, rank=0, world_size=1):
        dataset = SequenceDataset(ShardedSequences(self.url, "train", cache_dir=str(cache), cache_gb=20.0))
        self.sequences = dataset.sequences
        if world_size > 1:  # what Lightning puts in place of shuffle=True
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=SEED)
            options = dict(sampler=sampler)
        else:
            options = dict(shuffle=True, generator=torch.Generator().manual_seed(SEED))
        return StatefulDataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            snapshot_every_n_steps=32,  # as the datamodule: a state between snapshots replays batches
            **options,
        )

    def warm_up(self) -> None:
        """Copy every file into the cache (what the prefetch threads do in the first epoch)."""
        self.sequences.cache.fill()


class LitData(Format):
    name = "LitData"

    def write(self, rows, local, url, chunk_bytes):
        from litdata.streaming.writer import BinaryWriter

        writer = BinaryWriter(str(local), chunk_bytes=chunk_bytes)
        for index in range(len(rows)):
            writer.add_item(index, rows.item(index))
        writer.done()
        writer.merge()
        storage.upload_tree(local, url)
        self.url = url

    def loader(self, cache, batch_size, workers, rank=0, world_size=1):
        from litdata import StreamingDataLoader, StreamingDataset

        with environment(WORLD_SIZE=str(world_size), GLOBAL_RANK=str(rank), NNODES="1"):
            dataset = StreamingDataset(self.url, cache_dir=str(cache), shuffle=True, seed=SEED)
        return StreamingDataLoader(dataset, batch_size=batch_size, num_workers=workers)


class Mosaic(Format):
    name = "MosaicML Streaming"

    def write(self, rows, local, url, chunk_bytes):
        from streaming import MDSWriter

        length = rows.input_ids.shape[1]
        columns = {
            "index": "int64",
            "input_ids": f"ndarray:int32:{length}",
            "token_type_ids": f"ndarray:int8:{length}",
            "length": "int32",
        }
        with MDSWriter(out=str(local), columns=columns, size_limit=chunk_bytes) as writer:
            for index in range(len(rows)):
                writer.write(rows.item(index))
        storage.upload_tree(local, url)
        self.url = url

    def loader(self, cache, batch_size, workers, rank=0, world_size=1):
        from streaming import StreamingDataLoader, StreamingDataset

        ranks = dict(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        with environment(**ranks):
            self.dataset = StreamingDataset(
                remote=self.url, local=str(cache), shuffle=True, shuffle_seed=SEED, batch_size=batch_size
            )
        return StreamingDataLoader(self.dataset, batch_size=batch_size, num_workers=workers)

    def release(self):
        from streaming.base.util import clean_stale_shared_memory

        self.dataset = None
        gc.collect()
        clean_stale_shared_memory()

    def epoch_by_rank(self, cache, args, world_size):
        """Streaming starts torch.distributed (gloo) when WORLD_SIZE > 1, so the ranks must run
        at once: one process each (this script, ``--mosaic-rank``), one node of ``world_size``."""
        port = str(free_port())
        children = []
        for rank in range(world_size):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
            env.update(LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
            out = cache / f"rank{rank}.npy"
            command = [sys.executable, __file__, "--mosaic-rank", self.url, str(cache / "local"), str(out)]
            command += ["--batch-size", str(args.batch_size), "--workers", str(args.workers)]
            children.append((subprocess.Popen(command, env=env), out))
        for child, _ in children:
            if child.wait(300) != 0:
                raise RuntimeError(f"a --mosaic-rank process exited with {child.returncode}")
        return [np.load(out) for _, out in children]


def mosaic_rank(url: str, local: str, out: str, args) -> None:
    """One rank of :meth:`Mosaic.epoch_by_rank` (its variables set by the parent)."""
    import_mosaic()
    from streaming import StreamingDataLoader, StreamingDataset

    dataset = StreamingDataset(remote=url, local=local, shuffle=True, shuffle_seed=SEED, batch_size=args.batch_size)
    loader = StreamingDataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    np.save(out, np.concatenate([keys(batch) for batch in loader]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def import_litdata() -> None:
    """LitData fetches chunks from S3 with obstore when it is installed, and builds its client
    without ``allow_http``, so an ``http://`` endpoint (moto here, a MinIO without TLS) is refused
    ("BadScheme"); AWS_ALLOW_HTTP does not reach it. Allowed here by adding the option."""
    os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")  # it asks PyPI otherwise
    from litdata.streaming import downloader

    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://") and hasattr(downloader, "_OBSTORE_CLIENT_OPTIONS"):
        downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": "true"}
        LitData.notes = "obstore client patched with allow_http (see report). "


def import_mosaic() -> None:
    """``import streaming`` imports torchvision (for its image datasets) at the top; the PyPI
    torchvision wheel needs a CUDA torch, so where it does not import an empty stand-in is put in
    its place (only the text path is used here)."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in (
            "torchvision",
            "torchvision.datasets",
            "torchvision.transforms",
            "torchvision.transforms.functional",
        ):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision.datasets"].VisionDataset = object
        sys.modules["torchvision.datasets"].CIFAR10 = object
        sys.modules["torchvision.transforms.functional"].to_tensor = None
        Mosaic.notes = "torchvision stubbed to import (see report). "
    import streaming  # noqa: F401


@contextmanager
def environment(**values: str):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ------------------------------------------------------------------ the measurements
@dataclass
class Result:
    cold: float = float("nan")
    warm: float = float("nan")
    resume: str = "not run"
    sharding: str = "not run"
    notes: list[str] = field(default_factory=list)


def keys(batch: dict) -> np.ndarray:
    return np.asarray(batch["index"] if "index" in batch else batch["key"])


def tokens_per_second(fmt: Format, cache: Path, args) -> float:
    """One epoch through a new loader; positions per second, loader start-up included."""
    loader = fmt.loader(cache, args.batch_size, args.workers)
    start = time.perf_counter()
    positions = sum(batch["input_ids"].numel() for batch in loader)
    rate = positions / (time.perf_counter() - start)
    del loader
    fmt.release()
    return rate


def check_resume(fmt: Format, cache: Path, args) -> str:
    loader = fmt.loader(cache, args.batch_size, args.workers)
    iterator = iter(loader)
    for _ in range(RESUME_AT):
        next(iterator)
    state = loader.state_dict()
    expected = [next(iterator) for _ in range(RESUME_CHECK)]
    del iterator, loader
    fmt.release()
    restored = fmt.loader(cache, args.batch_size, args.workers)
    restored.load_state_dict(state)
    iterator = iter(restored)
    got = [next(iterator) for _ in range(RESUME_CHECK)]
    del iterator, restored
    fmt.release()
    same = all(
        np.array_equal(keys(a), keys(b)) and torch.equal(a["input_ids"], b["input_ids"])
        for a, b in zip(expected, got, strict=True)
    )
    first = keys(expected[0])[:3].tolist(), keys(got[0])[:3].tolist()
    detail = f"next {RESUME_CHECK} batches after {RESUME_AT}"
    return f"yes ({detail} identical)" if same else f"no ({detail}: rows {first[0]}... vs {first[1]}...)"


def check_sharding(fmt: Format, cache: Path, args, total: int) -> str:
    world_size = 2
    order = fmt.epoch_by_rank(cache / "first", args, world_size)
    again = fmt.epoch_by_rank(cache / "again", args, world_size)[0]
    seen = np.bincount(np.concatenate(order), minlength=total)
    missing, repeated = int((seen == 0).sum()), int((seen > 1).sum())
    overlap = len(np.intersect1d(order[0], order[1]))
    deterministic = np.array_equal(order[0], again)
    verdict = "yes" if missing == 0 and repeated == 0 and deterministic else "no"
    return (
        f"{verdict} (rows per rank {len(order[0])}/{len(order[1])} of {total}; missing {missing}, "
        f"seen twice {repeated}, ranks overlap {overlap}; same order on rerun: {'yes' if deterministic else 'no'})"
    )


def measure(fmt: Format, rows: Rows, tmp: Path, bucket: str, args) -> Result:
    result = Result(notes=[fmt.notes] if fmt.notes else [])
    local = tmp / f"write-{type(fmt).__name__.lower()}"
    start = time.perf_counter()
    fmt.write(rows, local, f"{bucket}/{type(fmt).__name__.lower()}-{uuid.uuid4().hex[:6]}", args.chunk_bytes)
    size = dir_bytes(local) if local.exists() else dir_bytes(fmt.local)
    result.notes.append(f"write+upload {time.perf_counter() - start:.1f}s, {size / 1e6:.1f} MB")
    cache = tmp / f"cache-{type(fmt).__name__.lower()}"
    try:
        result.cold = tokens_per_second(fmt, cache / "speed", args)
        if isinstance(fmt, Ours):  # a second epoch's loader finds the files the first one copied
            loader = fmt.loader(cache / "speed", args.batch_size, 0)
            fmt.warm_up()
            del loader
        result.warm = tokens_per_second(fmt, cache / "speed", args)
    except Exception as err:
        result.notes.append(failure("tokens/s", err))
    for name, check in (("resume", check_resume), ("sharding", check_sharding)):
        try:
            extra = (len(rows),) if name == "sharding" else ()
            setattr(result, name, check(fmt, cache / name, args, *extra))
        except Exception as err:
            setattr(result, name, "failed")
            result.notes.append(failure(name, err))
    return result


def failure(what: str, err: Exception) -> str:
    traceback.print_exc()
    return f"{what} failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"


def main() -> None:
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # memory maps
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows-per-shard", type=int, default=1024)
    parser.add_argument("--formats", default="electra,litdata,mosaic")
    parser.add_argument("--mosaic-rank", nargs=3, metavar=("URL", "LOCAL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mosaic_rank:
        mosaic_rank(*args.mosaic_rank, args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="compare-streaming-"))
    results: dict[str, Result] = {}
    with ExitStack() as stack:
        bucket = start_moto(stack)
        local = tmp / "electra-shards"
        rows = prepare_rows(local, tmp / "prepare-cache", args.seq_len, args.rows_per_shard)
        # the other formats' chunks: about the bytes of one of our shards (its three columns)
        args.chunk_bytes = args.rows_per_shard * args.seq_len * (4 + 1) + args.rows_per_shard * 4
        formats = {"electra": lambda: Ours(local), "litdata": LitData, "mosaic": Mosaic}
        for key in args.formats.split(","):
            try:
                if key == "mosaic":
                    import_mosaic()
                elif key == "litdata":
                    import_litdata()
                fmt = formats[key]()
                results[fmt.name] = measure(fmt, rows, tmp, bucket, args)
            except Exception as err:
                results[key] = Result(notes=[failure("setup", err)])
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{len(rows)} training rows of {args.seq_len} tokens, batches of {args.batch_size}, "
        f"{args.workers} loader workers, chunks of ~{args.chunk_bytes / 1e6:.2f} MB, moto S3 on 127.0.0.1\n"
    )
    print(
        "| format | tokens/s cold | tokens/s warm | exact resume | each sample once per epoch, 2 ranks x "
        f"{args.workers} workers | notes |"
    )
    print("|---|---:|---:|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r.cold:,.0f} | {r.warm:,.0f} | {r.resume} | {r.sharding} | {'; '.join(r.notes)} |")


if __name__ == "__main__":
    main()
