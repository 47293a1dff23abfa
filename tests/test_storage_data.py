"""Data on object storage, against a real S3 server on 127.0.0.1 (tests/s3_server.py): a corpus at
URLs reads as the same files do locally, electra-prepare-data to s3:// puts the folder a local run
writes (meta.json last), and shards read from s3:// give the batches of the same local shards, with
0 and 2 loader workers, after a resume, and through a cache held to a tiny budget."""

import json
import shutil
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from conftest import FAST, BatchRecorder, build
from electra_lit import storage
from electra_lit.config.schema import validate_config
from electra_lit.data import TableCorpus, TextCorpus
from electra_lit.data.pretraining.corpus import builtin_corpus_dir
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.data.pretraining.shard_cache import GB
from electra_lit.data.pretraining.shards import read_meta
from electra_lit.errors import ConfigError
from electra_lit.runs.pretrain import train

NOVELS = ["northangerabbey.txt.gz", "persuasion.txt.gz"]
PREPARE = [  # one short novel, 64-token sequences, shards of 100 rows: a dozen shard files or so
    "data=text",
    f"data.corpus.paths={builtin_corpus_dir() / 'northangerabbey.txt.gz'}",
    "data.corpus.document=chapter",
    "data.val_documents=3",
    "data.max_seq_length=64",
    "tokenizer=bert_uncased",
    "num_proc=1",
    "rows_per_shard=100",
    "run_dir=unused",
]
BATCHES = 6


def compose_prepare(out: str, cache_dir: Path, *overrides: str):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("prepare_data", overrides=[*PREPARE, f"out_dir={out}", f"cache_dir={cache_dir}", *overrides])


@pytest.fixture(scope="module")
def local_shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "books-64"
    prepare(compose_prepare(str(out), tmp_path_factory.mktemp("cache")))
    return out


@pytest.fixture
def s3_shards(s3, local_shards) -> str:
    """The local shards put in this test's bucket."""
    url = f"{s3.bucket}/books-64"
    storage.upload_tree(local_shards, url)
    return url


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def remote_files(url: str) -> dict[str, bytes]:
    fs, path = storage.filesystem(url)
    return {name: fs.cat_file(storage.join(path, name)) for name in sorted(storage.list_files(url))}


# ------------------------------------------------------------------ corpus
def test_a_corpus_glob_on_s3_reads_as_the_local_files(s3, tmp_path):
    books = f"{s3.bucket}/books"
    for name in NOVELS:
        storage.upload(builtin_corpus_dir() / name, f"{books}/{name}")
    storage.upload(builtin_corpus_dir() / NOVELS[0], f"{books}/notes/other.txt.gz")  # not matched by *.txt.gz
    (tmp_path / "README.md").write_text("not a corpus file")
    storage.upload(tmp_path / "README.md", f"{books}/README.md")

    local = TextCorpus([str(builtin_corpus_dir() / n) for n in NOVELS])
    for paths in (f"{books}/*.txt.gz", books, [f"{books}/{n}" for n in NOVELS]):
        remote = TextCorpus(paths, cache_dir=str(tmp_path / "cache"))
        assert remote.files == [f"{books}/{n}" for n in NOVELS]
        assert list(remote.documents()) == list(local.documents())
    assert remote.fingerprint() == TextCorpus(f"{books}/*.txt.gz").fingerprint()  # from the listing: no download
    storage.upload(builtin_corpus_dir() / "emma.txt.gz", f"{books}/{NOVELS[1]}")  # a file changed
    changed = TextCorpus(f"{books}/*.txt.gz", cache_dir=str(tmp_path / "cache"))
    assert changed.fingerprint() != remote.fingerprint()
    assert list(changed.documents())[-1] != list(local.documents())[-1]  # the copy is fetched again


def test_a_table_corpus_on_s3(s3, tmp_path):
    rows = [{"text": f"Document {i}. It has two sentences."} for i in range(3)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    storage.upload(tmp_path / "docs.jsonl", f"{s3.bucket}/table/docs.jsonl")
    corpus = TableCorpus(f"{s3.bucket}/table/*.jsonl", cache_dir=str(tmp_path / "cache"))
    assert corpus.builder == "json"
    assert list(corpus.documents()) == list(TableCorpus(str(tmp_path / "docs.jsonl")).documents())


def test_corpus_urls_fail_in_one_line(s3):
    with pytest.raises(ConfigError, match=rf"^data.corpus.paths: '{s3.bucket}/none/\*.txt' is no file or folder"):
        TextCorpus(f"{s3.bucket}/none/*.txt")
    with pytest.raises(ConfigError, match=r"^data.corpus.paths=s3://no-such-bucket/b: the bucket no-such-bucket does"):
        TextCorpus("s3://no-such-bucket/b")


# ------------------------------------------------------------------ electra-prepare-data
def test_prepare_to_s3_puts_the_folder_a_local_run_writes_meta_json_last(s3, local_shards, tmp_path, monkeypatch):
    put = []
    upload = storage.upload
    monkeypatch.setattr(storage, "upload", lambda src, url: (put.append(url), upload(src, url)))
    url = f"{s3.bucket}/prepared/books-64"
    prepare(compose_prepare(url, tmp_path / "cache"))
    assert remote_files(url) == folder_files(local_shards)
    assert put[-1] == f"{url}/meta.json" and len(put) == len(folder_files(local_shards))
    assert not storage.mirror_dir(url, tmp_path / "cache").exists()  # the staging folder is gone
    with pytest.raises(ConfigError, match=rf"^out_dir={url} already holds shards \(meta.json\)"):
        prepare(compose_prepare(url, tmp_path / "cache"))


# ------------------------------------------------------------------ data.shards
def datamodule(compose_pretrain, shards: str, tokenizer: str, *overrides: str):
    cfg = compose_pretrain(*FAST, "data=shards", f"data.shards={shards}", "tokenizer=pretrained",
                           f"tokenizer.path={tokenizer}", *overrides)  # fmt: skip
    _, module, _ = build(cfg)
    module.setup("fit")
    return module


def batches(loader, count: int) -> list[dict[str, torch.Tensor]]:
    iterator = iter(loader)
    return [next(iterator) for _ in range(count)]


def assert_same(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("workers", [0, 2])
def test_s3_shards_feed_the_batches_of_local_shards_and_resume_exactly(
    compose_pretrain, local_shards, s3_shards, workers
):
    overrides = [f"data.num_workers={workers}"]
    local = datamodule(compose_pretrain, str(local_shards), str(local_shards / "tokenizer"), *overrides)
    budget = sum(p.stat().st_size for p in local_shards.glob("*.npy")) // 2  # room for half: copies and ranges
    overrides.append(f"data.shard_cache_gb={budget / GB}")
    remote = datamodule(compose_pretrain, s3_shards, f"{s3_shards}/tokenizer", *overrides)
    assert len(remote.train_set) == len(local.train_set) and len(remote.val_set) == len(local.val_set)
    expected = batches(local.train_dataloader(), BATCHES)
    assert_same(batches(remote.train_dataloader(), BATCHES), expected)
    assert_same(list(remote.val_dataloader()), list(local.val_dataloader()))

    # a resume mid-epoch: a new process's loader from the state after 3 batches
    loader = remote.train_dataloader()
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    del iterator
    resumed = datamodule(compose_pretrain, s3_shards, f"{s3_shards}/tokenizer", *overrides).train_dataloader()
    resumed.load_state_dict(state)
    assert_same(batches(resumed, BATCHES - 3), expected[3:])
    assert remote.train_set.sequences.cache.used_bytes() <= budget  # the workers' copies kept to it


def test_the_shard_cache_keeps_to_its_budget(compose_pretrain, local_shards, s3_shards, tmp_path):
    expected = batches(
        datamodule(compose_pretrain, str(local_shards), str(local_shards / "tokenizer")).train_dataloader(), BATCHES
    )
    tokenizer = f"{s3_shards}/tokenizer"

    def remote(budget_gb: float):
        module = datamodule(compose_pretrain, s3_shards, tokenizer, f"data.shard_cache_gb={budget_gb}")
        return module, module.train_set.sequences.cache

    full, cache = remote(1.0)  # room for everything: the prefetch copies every train file
    assert cache.fill() >= 0 and all(cache.is_copied(i) for i in range(len(cache.files)))
    assert_same(batches(full.train_dataloader(), BATCHES), expected)  # read from the copies

    sizes = sorted(f.size for f in cache.files)
    budget = sizes[-1] * 2 + 1  # two of the largest files
    tiny, cache = remote(budget / GB)  # evicts at setup
    assert cache.used_bytes() <= budget
    assert_same(batches(tiny.train_dataloader(), BATCHES), expected)  # copies and byte ranges
    cache._thread.join(30)
    assert 0 < cache.used_bytes() <= budget
    assert sum(cache.is_copied(i) for i in range(len(cache.files))) >= 2

    none, cache = remote(0)  # every row by byte range
    assert cache.used_bytes() == 0
    assert_same(batches(none.train_dataloader(), BATCHES), expected)


def test_s3_shard_folders_resolve_as_local_ones(s3, local_shards, tmp_path):
    parts = [f"{s3.bucket}/parts/part-{i}" for i in range(2)]
    for part in parts:
        storage.upload_tree(local_shards, part)
    rows = read_meta(local_shards)["splits"]["train"]["rows"]
    for both in (parts, f"{s3.bucket}/parts", f"{s3.bucket}/parts/part-*"):  # a list, their parent, a glob
        with pytest.raises(ConfigError, match=r"^data.shards: shard_index=0 of num_shards=1 of .* is there 2 times"):
            read_meta(both)  # one machine's part twice: the manifest check runs on the store's meta.json
    for shards in (parts[0], f"{parts[0]}/", f"{s3.bucket}/parts/part-0*"):
        meta = read_meta(shards)
        assert meta["folders"] == [parts[0]] and meta["splits"]["train"]["rows"] == rows


def test_s3_shard_errors_are_one_line(s3, local_shards, monkeypatch):
    with pytest.raises(ConfigError, match=r"^data.shards=s3://no-such-bucket/x: the bucket no-such-bucket does not"):
        read_meta("s3://no-such-bucket/x")
    with pytest.raises(ConfigError, match=rf"^data.shards={s3.bucket}/none: no meta.json there, nor in its subfolders"):
        read_meta(f"{s3.bucket}/none")
    unfinished = f"{s3.bucket}/unfinished"
    storage.upload_tree(local_shards, unfinished, skip=lambda relative: relative.name == "meta.json")
    with pytest.raises(ConfigError, match=rf"^data.shards={unfinished}: {unfinished} holds shards but no meta.json"):
        read_meta(unfinished)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    fsspec.get_filesystem_class("s3").clear_instance_cache()
    with pytest.raises(ConfigError, match=rf"^data.shards={unfinished}: access refused, check the credentials"):
        read_meta(unfinished)


def test_a_negative_cache_budget_is_refused(compose_pretrain):
    with pytest.raises(ConfigError, match=r"^data.shard_cache_gb=-1.0 is negative"):
        validate_config(compose_pretrain("data.shard_cache_gb=-1"))


@pytest.mark.slow
def test_a_run_on_s3_shards_trains_and_resumes_on_the_batches_of_local_shards(
    compose_pretrain, local_shards, s3_shards, tmp_path
):
    def run(shards: str, tokenizer: str, steps: int, run_dir: Path) -> list:
        train(
            compose_pretrain(
                *FAST, "data=shards", f"data.shards={shards}", "tokenizer=pretrained", f"tokenizer.path={tokenizer}",
                "data.shard_cache_gb=0.00002", "trainer.val_check_interval=4", "trainer.limit_val_batches=2",
                f"trainer.max_steps={steps}", "+callbacks.recorder._target_=conftest.BatchRecorder", run_dir=run_dir,
            )
        )  # fmt: skip
        return list(BatchRecorder.seen)

    BatchRecorder.seen.clear()
    straight = run(str(local_shards), str(local_shards / "tokenizer"), 8, tmp_path / "local")
    BatchRecorder.seen.clear()
    run(s3_shards, f"{s3_shards}/tokenizer", 5, tmp_path / "remote")
    resumed = run(s3_shards, f"{s3_shards}/tokenizer", 8, tmp_path / "remote")
    assert [step for step, _ in straight] == list(range(8))
    assert resumed == straight


def test_a_row_is_read_whole_by_byte_range(s3, tmp_path):
    """The byte-range path on its own: the rows of an .npy file on the store, as np.load reads them."""
    from electra_lit.data.pretraining.shard_cache import RemoteFile, ShardCache

    array = np.arange(5 * 7, dtype=np.int32).reshape(5, 7)
    np.save(tmp_path / "a.npy", array)
    storage.upload(tmp_path / "a.npy", f"{s3.bucket}/f/a.npy")
    info = storage.list_files(f"{s3.bucket}/f")["a.npy"]
    cache = ShardCache([RemoteFile(f"{s3.bucket}/f/a.npy", info["size"], storage.fingerprint(info))],
                       [f"{s3.bucket}/f"], str(tmp_path / "cache"), 0)  # fmt: skip
    rows = cache.read_rows([(0, 4), (0, 0), (0, 2)])
    assert [r.tolist() for r in rows] == [array[4].tolist(), array[0].tolist(), array[2].tolist()]
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
