"""Corpora from every kind of source, tokenizers from folders, the two packing modes, and the
prepare and tokenizer commands."""

import json
import logging
import random

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from conftest import FAST, build
from electra_lit.data import HubCorpus, TableCorpus, TextCorpus, load_tokenizer, pack_documents, save_tokenizer
from electra_lit.data.pretraining.packing import SequenceBuilder
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.data.tokenizer import train_tokenizer_from_config as train_tokenizer
from electra_lit.errors import ConfigError

PARAGRAPHS = ["The house was large. The family was happy.", "Emma spoke first. Then she left!", "A short one."]


def write_docs(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i}.txt").write_text("\n\n".join(f"{p} Number {i}." for p in PARAGRAPHS) + "\n")
    return folder


# ------------------------------------------------------------------ sources
def test_text_files_per_file_or_per_paragraph(tmp_path):
    folder = write_docs(tmp_path / "docs", n=2)
    per_file = list(TextCorpus(str(folder), document="file").documents())
    assert len(per_file) == 2 and per_file[0][:2] == ["The house was large.", "The family was happy."]
    assert len(list(TextCorpus(str(folder / "*.txt"), document="paragraph").documents())) == 6


def test_tables_with_a_text_column(tmp_path):
    rows = [{"id": i, "body": f"Document {i}. It has two sentences."} for i in range(4)]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "docs.csv").write_text("id,body\n" + "".join(f"{r['id']},{r['body']}\n" for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    for name in ("docs.jsonl", "docs.csv", "docs.parquet"):
        documents = list(TableCorpus(str(tmp_path / name), text_column="body").documents())
        assert documents[1] == ["Document 1.", "It has two sentences."], name
    with pytest.raises(ConfigError, match=r"no column 'text'; the columns are: id, body"):
        TableCorpus(str(tmp_path / "docs.jsonl")).check()


def test_hub_corpus_reads_a_local_dataset_folder_and_names_a_missing_one(tmp_path, monkeypatch):
    """A hub name and a local folder go through the same datasets.load_dataset(streaming=True)."""
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"text": f"Row {i}. Second sentence."}) for i in range(3)))
    corpus = HubCorpus(str(folder), split="train")
    corpus.check()
    assert list(corpus.documents())[2] == ["Row 2.", "Second sentence."]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"^data.corpus: nobody/no-such-corpus, split train could not be opened"):
        HubCorpus("nobody/no-such-corpus").check()


def test_undecodable_bytes_are_replaced_and_counted(tmp_path, caplog):
    (tmp_path / "bad.txt").write_bytes(b"Fine words here. More \xff\xfe words.\n")
    with caplog.at_level(logging.WARNING):
        documents = list(TextCorpus(str(tmp_path / "bad.txt"), document="file").documents())
    assert documents == [["Fine words here.", "More \ufffd\ufffd words."]]
    assert "2 undecodable bytes were replaced" in caplog.text


def test_empty_and_unusable_corpora_are_refused(tmp_path, compose_pretrain):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match="empty.jsonl.*: the corpus is empty"):
        TableCorpus(str(tmp_path / "empty.jsonl")).check()
    (tmp_path / "blank").mkdir()
    for i in range(3):  # documents with nothing a tokenizer keeps
        (tmp_path / "blank" / f"{i}.txt").write_text("\u200b\u200b \u200b\n")
    cfg = compose_pretrain(*FAST, "data=text", f"data.corpus.paths={tmp_path / 'blank'}", "tokenizer=bert_uncased")
    _, datamodule, _ = build(cfg)
    with pytest.raises(ConfigError, match=r"0 training sequences \(its documents tokenize to nothing\)"):
        datamodule.setup("fit")


# ------------------------------------------------------------------ tokenizers
def test_tokenizer_from_a_folder_or_file(tmp_path, austen_tokenizer):
    save_tokenizer(austen_tokenizer, tmp_path / "tok")
    assert load_tokenizer(str(tmp_path / "tok")).get_vocab() == austen_tokenizer.get_vocab()
    (tmp_path / "tok" / "tokenizer.json").unlink()  # vocab.txt alone (a Hugging Face folder may have only that)
    assert load_tokenizer(str(tmp_path / "tok")).get_vocab() == austen_tokenizer.get_vocab()
    with pytest.raises(ConfigError, match="no tokenizer.json or vocab.txt there"):
        load_tokenizer(str(tmp_path))


def compose_tool(name, *overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose(name, overrides=list(overrides))


def test_electra_tokenizer_trains_on_the_configured_corpus(tmp_path):
    folder = write_docs(tmp_path / "docs")
    cfg = compose_tool(
        "train_tokenizer",
        f"out_dir={tmp_path / 'tok'}",
        "data=text",
        f"data.corpus.paths={folder}",
        "vocab_size=300",
        "run_dir=unused",
    )
    tokenizer = train_tokenizer(cfg)
    assert (tmp_path / "tok" / "vocab.txt").is_file() and (tmp_path / "tok" / "tokenizer.json").is_file()
    assert 20 < tokenizer.get_vocab_size() <= 300
    saved = load_tokenizer(str(tmp_path / "tok"))
    assert "family" in saved.get_vocab()
    assert saved.encode("the family was happy", add_special_tokens=False).tokens == ["the", "family", "was", "happy"]


# ------------------------------------------------------------------ packing
def test_packed_mode_holds_whole_documents_and_pads_less(austen_tokenizer):
    rng = random.Random(0)
    docs = [
        [[1000 * (d + 1) + rng.randrange(100) for _ in range(rng.randint(3, 12))] for _ in range(rng.randint(1, 4))]
        for d in range(300)
    ]
    dense = pack_documents(docs, 64, 2, 3, 0, rng=0, mode="packed", short_seq_prob=0.0)
    sparse = pack_documents(docs, 64, 2, 3, 0, rng=0, mode="document", short_seq_prob=0.0)
    assert dense.padding_fraction() < 0.5 * sparse.padding_fraction()
    assert len(dense) < len(sparse)
    # a document is never cut: all of its tokens are in one sequence
    for d in range(300):
        rows = {i for i in range(len(dense)) if np.any(dense.input_ids[i] // 1000 == d + 1)}
        assert len(rows) == 1
    # a document longer than a sequence is cut as ELECTRA does: sentences gather until the target
    # (16) is reached, the overflow is cut; here 10 + 10 tokens, then the last 10
    builder = SequenceBuilder(16, 2, 3, mode="packed", short_seq_prob=0.0, single_segment_prob=0.0)
    out = builder.add([[100 + i for i in range(10)] for _ in range(3)]) + builder.finish()
    assert [len(ids) for ids, _ in out] == [16, 12]


def test_builder_state_round_trips():
    docs = [[[i, i + 1, i + 2] for i in range(n)] for n in range(1, 30)]
    straight = SequenceBuilder(16, 2, 3, seed=5, mode="packed")
    expected = [row for doc in docs for row in straight.add(doc)] + straight.finish()
    first = SequenceBuilder(16, 2, 3, seed=5, mode="packed")
    got = [row for doc in docs[:11] for row in first.add(doc)]
    second = SequenceBuilder(16, 2, 3, seed=99, mode="packed")
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))  # survives serialisation
    got += [row for doc in docs[11:] for row in second.add(doc)] + second.finish()
    assert got == expected


# ------------------------------------------------------------------ shards
@pytest.mark.slow
def test_prepare_data_writes_shards_and_training_reads_them(tmp_path, compose_pretrain, austen_tokenizer):
    cfg = compose_tool(
        "prepare_data",
        f"out_dir={tmp_path / 'shards'}",
        "data.max_seq_length=64",
        "data.val_documents=5",
        "rows_per_shard=1000",
        "run_dir=unused",
    )
    meta = prepare(cfg)
    assert meta["splits"]["train"]["rows"] > 3000 and len(meta["splits"]["train"]["shards"]) > 3
    assert meta["max_seq_length"] == 64 and meta["vocab_size"] == 30522
    tokenizer_dir = tmp_path / "shards" / "tokenizer"
    assert (tokenizer_dir / "vocab.txt").is_file()
    with pytest.raises(ConfigError, match="already holds shards"):
        prepare(cfg)

    shards = [*FAST, "data=shards", f"data.shards={tmp_path / 'shards'}"]
    _, datamodule, _ = build(compose_pretrain(*shards, "tokenizer=pretrained", f"tokenizer.path={tokenizer_dir}"))
    datamodule.setup("fit")
    assert len(datamodule.train_set) == meta["splits"]["train"]["rows"]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["input_ids"].shape == (8, 64) and bool((batch["input_ids"][:, 0] == 101).all())

    save_tokenizer(austen_tokenizer, tmp_path / "other")
    _, mismatched, _ = build(compose_pretrain(*shards, "tokenizer=pretrained", f"tokenizer.path={tmp_path / 'other'}"))
    with pytest.raises(
        ConfigError, match="prepared with another tokenizer; use it: tokenizer=pretrained tokenizer.path="
    ):
        mismatched.setup("fit")
    with pytest.raises(Exception, match="tokenizer=wordpiece trains on data.corpus, and there is none"):
        build(compose_pretrain(*shards))
    _, longer, _ = build(
        compose_pretrain(*shards, "tokenizer=pretrained", f"tokenizer.path={tokenizer_dir}", "data.max_seq_length=128")
    )
    with pytest.raises(ConfigError, match="data.max_seq_length=128 but data.shards=.* holds sequences of 64"):
        longer.setup("fit")
