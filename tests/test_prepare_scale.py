"""electra-prepare-data scaled out: num_proc worker processes give the same shards as one process,
machine shards (num_shards / shard_index) read back by data=shards as one dataset, the manifest
check refuses folders that do not fit together, and an interrupted preparation is no dataset.

One short novel of the built-in corpus, 64-token sequences and small chunks (several per worker)
keep each preparation under a second or two."""

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from conftest import FAST, build
from electra_lit.data.pretraining import prepare as prepare_module
from electra_lit.data.pretraining.corpus import builtin_corpus_dir
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.data.pretraining.shards import read_meta
from electra_lit.errors import ConfigError

SMALL = [
    "data=text",
    f"data.corpus.paths={builtin_corpus_dir() / 'northangerabbey.txt.gz'}",
    "data.corpus.document=chapter",
    "data.val_documents=3",
    "data.max_seq_length=64",
    "tokenizer=bert_uncased",
    "run_dir=unused",
]
SMALL_CHUNK_CHARS = 20_000  # about 20 chunks in the novel, so that both workers get several


def compose_prepare(out: Path, *overrides: str):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("prepare_data", overrides=[*SMALL, f"out_dir={out}", *overrides])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``prepared(name, *overrides)``: a folder prepared once per module with those overrides."""
    root, done = tmp_path_factory.mktemp("prepared"), {}
    patch = pytest.MonkeyPatch()
    patch.setattr(prepare_module, "CHUNK_CHARS", SMALL_CHUNK_CHARS)

    def _prepared(name: str, *overrides: str) -> Path:
        if name not in done:
            prepare(compose_prepare(root / name, *overrides))
            done[name] = root / name
        return done[name]

    yield _prepared
    patch.undo()


def shard_files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.glob("*.npy"))}


def meta_of(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


# ------------------------------------------------------------------ processes on one machine
def test_num_proc_2_writes_the_shards_num_proc_1_writes(prepared):
    one, two = prepared("one", "num_proc=1"), prepared("two", "num_proc=2")
    meta_one, meta_two = meta_of(one), meta_of(two)
    assert meta_one["num_proc"] == 1 and meta_two["num_proc"] == 2
    assert meta_one["splits"]["train"]["rows"] > 500 and meta_one["splits"]["validation"]["rows"] > 8
    assert meta_one["documents"] == meta_one["corpus_documents"] == 31  # Northanger Abbey's chapters
    assert [meta_one["splits"][s]["documents"] for s in ("validation", "train")] == [3, 28]  # the first 3 held out
    assert {**meta_one, "num_proc": 2} == meta_two
    assert shard_files(one) == shard_files(two)


def test_num_proc_2_is_deterministic(prepared):
    first, again = prepared("two", "num_proc=2"), prepared("two-again", "num_proc=2")
    assert meta_of(first) == meta_of(again)
    assert shard_files(first) == shard_files(again)


@pytest.mark.parametrize("num_proc", [1, 2])
def test_a_failure_midway_takes_back_what_it_wrote(tmp_path, monkeypatch, num_proc):
    if num_proc > 1 and prepare_module.START_METHOD != "fork":
        pytest.skip("the failing packer reaches the workers by fork only")
    calls = []  # each worker counts its own chunks
    original = prepare_module.ChunkPacker.__call__

    def fail_on_the_third_chunk(self, chunk):
        calls.append(chunk.split)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return original(self, chunk)

    monkeypatch.setattr(prepare_module, "CHUNK_CHARS", SMALL_CHUNK_CHARS)
    monkeypatch.setattr(prepare_module.ChunkPacker, "__call__", fail_on_the_third_chunk)
    kept = tmp_path / "kept"  # a folder that was there before keeps what it held, and only that
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    for out in (tmp_path / "out", kept):
        calls.clear()
        with pytest.raises(RuntimeError, match="disk full"):
            prepare(compose_prepare(out, f"num_proc={num_proc}", "rows_per_shard=50"))
    assert not (tmp_path / "out").exists()  # made by the preparation, removed with its shards
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]

    # killed before it could clean up (kill -9, a node lost): the shards without meta.json are no dataset
    monkeypatch.setattr(prepare_module.ShardWriter, "remove", lambda self: None)
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        prepare(compose_prepare(tmp_path / "out", f"num_proc={num_proc}", "rows_per_shard=50"))
    assert list((tmp_path / "out").glob("*.npy")) and not (tmp_path / "out" / "meta.json").exists()
    for shards in (tmp_path / "out", tmp_path):  # the folder, or its parent
        with pytest.raises(ConfigError, match="out holds shards but no meta.json, an unfinished electra-prepare-data"):
            read_meta(shards)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["num_proc=0"], r"^num_proc=0 must be a positive integer \(processes\), or null for every core$"),
        (["num_shards=0"], r"^num_shards=0 must be a positive integer \(machines\)"),
        (["shard_index=-1"], r"^shard_index=-1 must be in \[0, 0\] with num_shards=1"),
        (["num_shards=2", "shard_index=2"], r"^shard_index=2 must be in \[0, 1\] with num_shards=2"),
    ],
    ids=["num_proc", "num_shards", "negative-shard_index", "shard_index-too-large"],
)
def test_bad_scale_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        prepare(compose_prepare(tmp_path / "out", *overrides))
    assert not (tmp_path / "out" / "meta.json").exists()


# ------------------------------------------------------------------ machines
def test_machine_shards_are_read_as_one_dataset(prepared, compose_pretrain, tmp_path):
    parts = [prepared(f"machine-{i}", "num_shards=2", f"shard_index={i}", "num_proc=2") for i in (0, 1)]
    metas = [meta_of(p) for p in parts]
    assert [(m["num_shards"], m["shard_index"]) for m in metas] == [(2, 0), (2, 1)]
    assert metas[0]["documents"] + metas[1]["documents"] == metas[0]["corpus_documents"] == 31
    # machine 0: the 3 validation documents and training documents 4, 6, ..., 30; machine 1: 3, 5, ..., 29
    assert [[m["splits"][s]["documents"] for s in ("validation", "train")] for m in metas] == [[3, 14], [0, 14]]
    assert metas[0]["splits"]["validation"]["rows"] > 0 and metas[1]["splits"]["validation"]["rows"] == 0
    train_rows = sum(m["splits"]["train"]["rows"] for m in metas)

    tokenizer = ["tokenizer=pretrained", f"tokenizer.path={parts[0] / 'tokenizer'}"]
    (tmp_path / "all").mkdir()
    for part in parts:  # a parent folder of both, as machines writing to shared storage leave it
        (tmp_path / "all" / part.name).symlink_to(part)
    for shards in (f"[{parts[0]},{parts[1]}]", str(tmp_path / "all"), str(parts[0].parent / "machine-*")):
        cfg = compose_pretrain(*FAST, "data=shards", f"data.shards={shards}", *tokenizer)
        _, datamodule, _ = build(cfg)
        datamodule.setup("fit")
        assert len(datamodule.train_set) == train_rows
        assert len(datamodule.val_set) == metas[0]["splits"]["validation"]["rows"]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["input_ids"].shape == (8, 64)


def test_manifest_refuses_a_missing_or_repeated_machine_shard(prepared):
    parts = [prepared(f"machine-{i}", "num_shards=2", f"shard_index={i}", "num_proc=2") for i in (0, 1)]
    with pytest.raises(
        ConfigError, match=r"shard_index=1 of num_shards=2 of .* is missing \(.*machine-0: shard_index=0\)"
    ):
        read_meta([parts[0]])
    with pytest.raises(ConfigError, match="shard_index=0 of num_shards=2 of .* is there 2 times"):
        read_meta([parts[0], parts[1], parts[0]])


def test_manifest_refuses_mixed_max_seq_length(prepared):
    short, long = prepared("one", "num_proc=1"), prepared("length-32", "num_proc=2", "data.max_seq_length=32")
    with pytest.raises(ConfigError) as refused:
        read_meta([short, long])
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("data.shards: the folders differ in max_seq_length (")
    assert f"{short}: max_seq_length=64, {long}: max_seq_length=32" in message


def test_manifest_refuses_mixed_tokenizers(prepared, tmp_path):
    ours = prepared("one", "num_proc=1")
    theirs = tmp_path / "other-tokenizer"
    shutil.copytree(ours, theirs)
    meta = meta_of(theirs)  # as another vocab would have left it: only the digest is compared
    (theirs / "meta.json").write_text(json.dumps({**meta, "tokenizer": "0123456789abcdef", "source": "elsewhere"}))
    with pytest.raises(ConfigError) as refused:
        read_meta([ours, theirs])
    message = str(refused.value)
    assert "\n" not in message
    assert f"{ours}: tokenizer={meta['tokenizer']}, {theirs}: tokenizer=0123456789abcdef" in message
    assert read_meta([ours])["folders"] == [str(ours)]
