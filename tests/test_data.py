"""Corpus, tokenizers, packing and the DataModule."""

import gzip
import logging
import random
import re
import signal

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from tokenizers import Tokenizer

from electra_lit.data import (
    PretrainDataModule,
    SpecialTokenIds,
    TextCorpus,
    load_wordpiece,
    pack_documents,
    save_tokenizer,
    train_wordpiece,
)
from electra_lit.data.pretraining.corpus import builtin_corpus_dir, split_sentences
from electra_lit.data.pretraining.datamodule import DataConfig
from electra_lit.data.pretraining.masking import MaskingCollator
from electra_lit.data.pretraining.packing import PackedSequences, SequenceBuilder, split_segments
from electra_lit.data.pretraining.prepare import prepare
from electra_lit.errors import ConfigError


# ---------------------------------------------------------------- corpus
def test_builtin_corpus_is_six_novels_one_document_per_chapter():
    corpus = TextCorpus()
    assert sorted(p.name for p in corpus.files) == sorted(
        f"{n}.txt.gz"
        for n in ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]
    )
    documents = list(corpus.documents())
    assert len(documents) == 269  # chapters of the six novels
    assert documents[0][0].startswith("Emma Woodhouse, handsome, clever, and rich")
    assert not any(s.upper().startswith("CHAPTER") for d in documents for s in d)


def test_document_modes(tmp_path):
    (tmp_path / "a.txt").write_text("Title\n\nChapter 1\n\nOne. Two!\n\nThree?\n\nCHAPTER II\n\nFour.\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f:
        f.write("No headings here. At all.\n\nSecond paragraph.\n")
    assert list(TextCorpus(str(tmp_path)).documents()) == [
        ["One.", "Two!", "Three?"],
        ["Four."],
        ["No headings here.", "At all.", "Second paragraph."],
    ]
    assert len(list(TextCorpus(str(tmp_path), document="file").documents())) == 2
    paragraphs = list(TextCorpus(str(tmp_path / "*.txt"), document="paragraph").documents())
    assert paragraphs == [["Title"], ["Chapter 1"], ["One.", "Two!"], ["Three?"], ["CHAPTER II"], ["Four."]]


def test_sentence_split_keeps_abbreviations_and_quotes():
    assert split_sentences('Mr. Knightley came. "Is it so?" said Emma. Yes.') == [
        "Mr. Knightley came.",
        '"Is it so?" said Emma.',
        "Yes.",
    ]
    assert split_sentences("Mrs. Weston left. Then _she_ spoke!") == ["Mrs. Weston left.", "Then _she_ spoke!"]


def test_missing_corpus_path_is_a_clear_error(tmp_path):
    with pytest.raises(
        ConfigError, match=r"data.corpus.paths: '.*nothing\*.txt' is no file or folder and matches no file"
    ):
        TextCorpus(str(tmp_path / "nothing*.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no .txt or .txt.gz file"):
        TextCorpus(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="data.corpus.document='page' is not one of chapter, file, paragraph"):
        TextCorpus(document="page")


# ---------------------------------------------------------------- tokenizers
def test_bert_vocab_ids(bert_tokenizer):
    assert bert_tokenizer.get_vocab_size() == 30522
    assert SpecialTokenIds.from_tokenizer(bert_tokenizer) == SpecialTokenIds(pad=0, unk=100, cls=101, sep=102, mask=103)
    assert bert_tokenizer.encode("It is a truth universally acknowledged", add_special_tokens=False).tokens == [
        "it",
        "is",
        "a",
        "truth",
        "universally",
        "acknowledged",
    ]


def test_trained_tokenizer_is_cached(tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_text("the cat sat on the mat. " * 50 + "\n\nthe dog ran. " * 50)
    corpus = TextCorpus(str(tmp_path / "t.txt"), document="paragraph")
    first = train_wordpiece(corpus, vocab_size=60, cache_dir=str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache" / "tokenizers").glob("*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(Tokenizer, "train_from_iterator", fail)
    again = train_wordpiece(corpus, vocab_size=60, cache_dir=str(tmp_path / "cache"))
    assert again.get_vocab() == first.get_vocab()
    ids = SpecialTokenIds.from_tokenizer(again)
    assert (ids.pad, ids.unk, ids.cls, ids.sep, ids.mask) == (0, 1, 2, 3, 4)


def test_vocab_without_mask_token_is_refused(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(ConfigError, match=r"lacks \[MASK\]"):
        load_wordpiece(str(vocab))
    with pytest.raises(ConfigError, match="tokenizer.vocab_file: '.*missing.txt' does not exist"):
        load_wordpiece(str(tmp_path / "missing.txt"))


def test_saved_tokenizer_round_trips(tmp_path, bert_tokenizer):
    save_tokenizer(bert_tokenizer, tmp_path / "tok")
    lines = (tmp_path / "tok" / "vocab.txt").read_text().splitlines()
    assert len(lines) == 30522 and lines[101] == "[CLS]"
    assert load_wordpiece(str(tmp_path / "tok" / "vocab.txt")).get_vocab() == bert_tokenizer.get_vocab()


# ---------------------------------------------------------------- packing
CLS, SEP, PAD = 2, 3, 0


def synthetic_documents(n_docs=60, seed=0):
    """Documents whose tokens identify them: document d uses ids in [1000 d, 1000 d + 999]."""
    rng = random.Random(seed)
    return [
        [[1000 * (d + 1) + rng.randrange(1000) for _ in range(rng.randint(3, 30))] for _ in range(rng.randint(1, 25))]
        for d in range(n_docs)
    ]


def test_sequences_have_the_bert_layout_and_never_span_documents():
    packed = pack_documents(synthetic_documents(), 64, CLS, SEP, PAD, random.Random(0))
    assert packed.input_ids.shape[1] == 64
    for ids, types, length in zip(packed.input_ids, packed.token_type_ids, packed.lengths):
        real = ids[:length]
        assert real[0] == CLS and real[-1] == SEP and np.all(ids[length:] == PAD)
        seps = np.flatnonzero(real == SEP)
        assert len(seps) in (1, 2)
        assert np.all(types[: seps[0] + 1] == 0)  # [CLS] A [SEP]
        assert np.all(types[seps[0] + 1 : length] == 1)  # B [SEP]
        assert len({t // 1000 for t in real if t >= 1000}) == 1  # one document only


def single_segment_share(packed):
    return np.mean([(row[:n] == SEP).sum() == 1 for row, n in zip(packed.input_ids, packed.lengths)])


def test_single_segment_and_short_sequence_rates():
    docs = synthetic_documents(n_docs=400, seed=1)

    def pack(single, short):
        return pack_documents(
            docs, 128, CLS, SEP, PAD, random.Random(0), single_segment_prob=single, short_seq_prob=short
        )

    assert single_segment_share(pack(1.0, 0.0)) == 1.0
    never, default = single_segment_share(pack(0.0, 0.0)), single_segment_share(pack(0.1, 0.0))
    assert 0.05 < default - never < 0.15  # the 10% drawn, less those that were single anyway
    # a random shorter target in 5% of sequences: more, shorter sequences
    assert len(pack(0.0, 0.05)) > len(pack(0.0, 0.0))
    assert pack(0.0, 1.0).lengths.mean() < 0.75 * pack(0.0, 0.0).lengths.mean()


def test_long_sentences_are_cut_at_max_length():
    packed = pack_documents([[list(range(1000, 1300))]], 32, CLS, SEP, PAD, random.Random(0))
    assert packed.lengths.tolist() == [32]
    assert packed.input_ids[0, 0] == CLS and packed.input_ids[0, 31] == SEP


class Coins:
    """Stands in for the builder's random.Random: answers ``random()`` with the given values, in turn."""

    def __init__(self, *values):
        self.values, self.draws = list(values), 0

    def random(self):
        self.draws += 1
        return self.values.pop(0)


def sentences(*lengths):
    return [[100 * (i + 1)] * n for i, n in enumerate(lengths)]  # sentence i: n tokens of 100 (i + 1)


def test_released_split_is_electras_rule_coin_flips_included():
    s1, s2, s3, s4 = sentences(4, 4, 5, 1)  # A's budget: (23 - 3) // 2 = 10
    # s1: A is empty; s2: 8 < 10; s3: 13 overshoots, B is empty and A under budget: a coin, tails (0.7)
    # goes to B; s4: 9 < 10 joins A although B has begun
    coins = Coins(0.7)
    assert split_segments([s1, s2, s3, s4], 10, "released", coins) == ([s1, s2, s4], [s3])
    assert coins.draws == 1
    coins = Coins(0.3)  # heads: s3 joins A (13 tokens, over budget); s4 then neither fits nor may flip
    assert split_segments([s1, s2, s3, s4], 10, "released", coins) == ([s1, s2, s3], [s4])
    assert coins.draws == 1
    # prefix: A the leading sentences within budget (10 <= 10 counts), no coins
    assert split_segments([s1, s2, s3, s4], 10, "prefix", Coins()) == ([s1, s2], [s3, s4])
    a, b = sentences(5, 5)
    assert split_segments([a, b], 10, "prefix", Coins()) == ([a, b], [])
    assert split_segments([a, b], 10, "released", Coins(0.9)) == ([a], [b])  # 10 < 10 is false: a coin, tails
    big, small = sentences(30, 2)
    assert split_segments([big, small], 10, "released", Coins()) == ([big], [small])  # A empty: the first always
    assert split_segments([big, small], float("inf"), "released", Coins()) == ([big, small], [])  # single segment


def test_segment_split_default_is_released_and_puts_more_tokens_in_a():
    builder = SequenceBuilder(64, CLS, SEP)
    assert builder.segment_split == "released" and DataConfig().segment_split == "released"
    docs = synthetic_documents(n_docs=400, seed=2)

    def share(rule):
        return pack_documents(docs, 128, CLS, SEP, PAD, 0, segment_split=rule).segment_a_share()

    released, prefix = share("released"), share("prefix")
    assert 0.48 < released < 0.6 and prefix < released - 0.05, (released, prefix)
    with pytest.raises(
        ConfigError, match=r"^data.segment_split=halves is not a segment split; choose one of: released, prefix$"
    ):
        DataConfig(segment_split="halves")


def test_segment_a_share_counts_pair_sequences_without_special_tokens():
    ids = np.array([[CLS, 7, 7, 7, SEP, 8, SEP, PAD], [CLS, 7, 7, SEP, PAD, PAD, PAD, PAD]])  # a pair; A only
    types = np.array([[0, 0, 0, 0, 0, 1, 1, 0], [0] * 8], dtype=np.int8)
    packed = PackedSequences(ids, types, np.array([7, 4]))
    assert packed.segment_a_share() == 3 / 4  # A 3 tokens, B 1; the single-segment sequence left out


# ---------------------------------------------------------------- datamodule
def make_datamodule(tokenizer, **kw):
    masking = lambda **k: MaskingCollator(mask_prob=0.15, **k)  # noqa: E731
    args = dict(
        corpus=TextCorpus(),
        tokenizer=tokenizer,
        masking=masking,
        max_seq_length=64,
        batch_size=8,
        num_workers=0,
        seed=3,
    )
    return PretrainDataModule(**{**args, **kw})


def test_datamodule_batches(austen_tokenizer):
    dm = make_datamodule(austen_tokenizer)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (8, 64)
    assert batch["masked_positions"].shape == (8, 9)  # int(0.155 * 64)
    assert batch["input_ids"].dtype == torch.int64
    ids = SpecialTokenIds.from_tokenizer(austen_tokenizer)
    assert torch.all(batch["input_ids"][:, 0] == ids.cls)
    assert len(dm.val_set) >= 8 and len(dm.train_set) > 20 * len(dm.val_set)


@pytest.mark.slow
def test_validation_documents_are_held_out(austen_tokenizer):
    dm = make_datamodule(austen_tokenizer, max_seq_length=256)
    dm.setup("fit")
    train_rows = {tuple(r[:n]) for r, n in zip(dm.train_set.sequences.input_ids, dm.train_set.sequences.lengths)}
    val_rows = {tuple(r[:n]) for r, n in zip(dm.val_set.sequences.input_ids, dm.val_set.sequences.lengths)}
    assert not train_rows & val_rows


@pytest.mark.slow
def test_same_seed_same_batches(austen_tokenizer):
    first, second = make_datamodule(austen_tokenizer), make_datamodule(austen_tokenizer)
    first.setup("fit"), second.setup("fit")
    a, b = next(iter(first.train_dataloader())), next(iter(second.train_dataloader()))
    for name in a:
        assert torch.equal(a[name], b[name])


def test_tiny_corpus_is_refused(tmp_path, austen_tokenizer):
    (tmp_path / "one.txt").write_text("Just one document. Nothing else.\n")
    dm = make_datamodule(austen_tokenizer, corpus=TextCorpus(str(tmp_path / "one.txt")))
    with pytest.raises(ConfigError, match="1 training sequences, fewer than data.batch_size=8"):
        dm.setup("fit")


# ---------------------------------------------------------------- small local corpora
def few_books(folder, count=6, chars=6000):
    """``count`` text files cut from one novel: a user's handful of books, small."""
    with gzip.open(builtin_corpus_dir() / "emma.txt.gz", "rt") as novel:
        text = novel.read()
    folder.mkdir()
    for i in range(count):
        (folder / f"book{i}.txt").write_text(text[50_000 + i * chars : 50_000 + (i + 1) * chars])
    return folder


def validation_line(caplog) -> str:
    return next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Validation:"))


def rows(sequences) -> set:
    return {tuple(r[:n]) for r, n in zip(sequences.input_ids, sequences.lengths)}


def test_a_few_books_hold_out_a_share_of_the_sequences_not_a_whole_book(tmp_path, bert_tokenizer, caplog):
    dm = make_datamodule(bert_tokenizer, corpus=TextCorpus(str(few_books(tmp_path / "books")), document="file"))
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    total = len(dm.train_set) + len(dm.val_set)
    assert total > 100 and len(dm.val_set) == 8  # 2% of the sequences, at least a batch: not a sixth of them
    assert not rows(dm.train_set.sequences) & rows(dm.val_set.sequences)
    line = validation_line(caplog)
    assert line.startswith(f"Validation: a random {800 / total:.1f}% of the sequences, from all 6 documents"), line
    assert "% of the corpus; change it with data.val_fraction (a share) or data.val_documents" in line


def test_whole_documents_held_out_are_named_with_their_share(tmp_path, bert_tokenizer, caplog):
    books = few_books(tmp_path / "books")
    dm = make_datamodule(bert_tokenizer, corpus=TextCorpus(str(books), document="file"), val_documents=1)
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    line = validation_line(caplog)
    assert re.match(
        r'Validation: 1 of 6 documents held out whole \(".{10,40}"\): \d+ sequences, [\d,]+ tokens, 1\d\.\d% of', line
    )


def short_paragraphs(path):
    path.write_text("\n\n".join(f"Paragraph {i} has a few words. It ends here." for i in range(400)))
    return TextCorpus(str(path), document="paragraph")


def test_short_documents_that_pad_most_of_the_batch_point_to_packing(tmp_path, bert_tokenizer, caplog):
    corpus = short_paragraphs(tmp_path / "lines.txt")
    with caplog.at_level(logging.WARNING):
        make_datamodule(bert_tokenizer, corpus=corpus).setup("fit")
    assert re.search(r"\b[5-9]\d% of the positions in the batches are padding: .* data.packing=packed", caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_datamodule(bert_tokenizer, corpus=corpus, packing="packed", val_documents=60).setup("fit")
    assert "padding" not in caplog.text


def compose_prepare(out, *overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose(
            "prepare_data",
            overrides=["tokenizer=bert_uncased", "run_dir=unused", "num_proc=1", f"out_dir={out}", *overrides],
        )


def test_prepare_data_refuses_holding_out_every_document_before_writing_anything(tmp_path):
    books = few_books(tmp_path / "books")
    cfg = compose_prepare(tmp_path / "out", "data=text", f"data.corpus.paths={books}")
    message = r"has 6 documents and data.val_documents=100 \(the default\) would hold out all of them for validation; set data.val_documents=1 "
    with pytest.raises(ConfigError, match=message):
        prepare(cfg)
    assert not (tmp_path / "out").exists()


def test_prepare_data_reports_the_held_out_share_and_points_to_packing(tmp_path, caplog, capsys):
    corpus = short_paragraphs(tmp_path / "lines.txt")
    cfg = compose_prepare(
        tmp_path / "out",
        "data=text",
        f"data.corpus.paths={corpus.files[0]}",
        "data.corpus.document=paragraph",
        "data.val_documents=8",
    )
    with caplog.at_level(logging.WARNING):
        prepare(cfg)
    assert "validation: the first 8 documents, held out whole, 2.0% of the tokens" in capsys.readouterr().out
    assert "of the positions in the batches are padding" in caplog.text and "data.packing=packed" in caplog.text


def test_held_out_documents_that_do_not_fill_a_batch_are_one_smaller_batch(tmp_path, bert_tokenizer):
    corpus = short_paragraphs(tmp_path / "lines.txt")  # 400 one-line documents, 2% held out: 8 sequences
    dm = make_datamodule(bert_tokenizer, corpus=corpus, batch_size=16)
    dm.setup("fit")
    assert 0 < len(dm.val_set) < 16
    batches = list(dm.val_dataloader())
    assert len(batches) == 1 and batches[0]["input_ids"].shape[0] == len(dm.val_set)


class _WorkerView(torch.utils.data.Dataset):
    """What a loader worker sees: its tokenizer parallelism, torch threads and SIGTERM handler."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        import os

        return os.environ.get("TOKENIZERS_PARALLELISM"), torch.get_num_threads(), signal.getsignal(signal.SIGTERM)


def test_loader_workers_tokenize_on_one_thread_and_leave_stop_signals_to_the_run():
    from electra_lit.data.workers import worker_init

    loader = torch.utils.data.DataLoader(
        _WorkerView(), batch_size=None, num_workers=1, worker_init_fn=worker_init(0), multiprocessing_context="fork"
    )
    for parallelism, threads, sigterm in loader:
        assert (parallelism, threads, sigterm) == ("false", 1, signal.SIG_IGN)
