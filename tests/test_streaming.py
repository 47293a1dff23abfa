"""The streaming path: disjoint parts per rank and per worker, reshuffled epochs, exact resume."""

import itertools

import pytest
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from electra_lit.data import MaskingCollator, SpecialTokenIds, StreamingSequences, TextCorpus

MARKERS = ["alpha", "bravo", "charlie", "delta"]


@pytest.fixture(scope="module")
def marked_corpus(tmp_path_factory):
    """Four files, one document each, every sentence carrying the file's marker word."""
    folder = tmp_path_factory.mktemp("marked")
    for marker in MARKERS:
        sentences = [f"The {marker} house number {i} was large." for i in range(120)]
        (folder / f"{marker}.txt").write_text(" ".join(sentences) + "\n")
    return TextCorpus(str(folder), document="file")


def stream(corpus, tokenizer, **kw):
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    builder = dict(
        max_seq_length=64, cls_id=ids.cls, sep_id=ids.sep, mode="document", single_segment_prob=0.1, short_seq_prob=0.05
    )
    return StreamingSequences(corpus, tokenizer, builder, pad_id=ids.pad, seed=3, **kw)


def markers(tokenizer, example):
    tokens = set(tokenizer.decode(example["input_ids"].tolist()).split())
    return {m for m in MARKERS if m in tokens}


def test_each_rank_reads_a_disjoint_part(marked_corpus, bert_tokenizer):
    seen = []
    for rank in (0, 1):
        first = itertools.islice(stream(marked_corpus, bert_tokenizer, rank=rank, world_size=2), 30)
        seen.append(set().union(*(markers(bert_tokenizer, e) for e in first)))
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(MARKERS)


def test_each_worker_reads_a_disjoint_part(marked_corpus, bert_tokenizer):
    loader = DataLoader(stream(marked_corpus, bert_tokenizer), batch_size=None, num_workers=2)
    first = list(itertools.islice(loader, 40))  # workers take turns: even items from worker 0
    by_worker = [set().union(*(markers(bert_tokenizer, e) for e in first[w::2])) for w in (0, 1)]
    assert by_worker[0] and by_worker[1] and not by_worker[0] & by_worker[1]


def test_a_single_file_feeds_one_worker_and_the_other_stops(tmp_path, bert_tokenizer):
    """datasets gives workers whole files: with one file the idle worker ends instead of spinning."""
    (tmp_path / "one.txt").write_text(" ".join(f"The alpha house number {i} was large." for i in range(60)) + "\n")
    loader = DataLoader(
        stream(TextCorpus(str(tmp_path), document="file"), bert_tokenizer), batch_size=None, num_workers=2
    )
    examples = list(itertools.islice(loader, 25))  # several passes over the file's ~10 sequences
    assert len(examples) == 25 and all(markers(bert_tokenizer, e) == {"alpha"} for e in examples)


def test_epochs_read_the_files_in_new_orders(marked_corpus, bert_tokenizer):
    s = stream(marked_corpus, bert_tokenizer)
    orders = [[row["text"].split()[1] for row in s._source(epoch, 0, 1)] for epoch in range(3)]
    assert all(sorted(order) == MARKERS for order in orders)
    assert len({tuple(order) for order in orders}) > 1


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resumes_exactly(marked_corpus, bert_tokenizer, workers):
    collator = MaskingCollator(special_token_ids=SpecialTokenIds.from_tokenizer(bert_tokenizer), max_seq_length=64)

    def loader():
        return StatefulDataLoader(
            stream(marked_corpus, bert_tokenizer),
            batch_size=4,
            num_workers=workers,
            collate_fn=collator,
            drop_last=True,
        )

    straight = list(itertools.islice(loader(), 30))  # crosses an epoch: ~20 sequences per pass
    first = loader()
    it = iter(first)
    before = [next(it) for _ in range(13)]
    state = first.state_dict()
    del it, first
    resumed = loader()
    resumed.load_state_dict(state)
    after = list(itertools.islice(resumed, 17))
    for a, b in zip(straight, before + after, strict=True):
        for name in a:
            assert torch.equal(a[name], b[name]), name
