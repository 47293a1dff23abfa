"""task=austen_novel: the built-in task, made from the packaged novels (no download)."""

import collections
import json
import random
import re

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from electra_lit.data.tasks import BUILTIN_SOURCES, Task, TaskDataModule, austen_novel
from electra_lit.data.tasks.glue import read_split
from electra_lit.errors import ConfigError
from electra_lit.runs.finetune import check_inputs, finetune


def composed(tmp_path, *overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("finetune", overrides=["task=austen_novel", f"run_dir={tmp_path / 'run'}", *overrides])


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    cfg = composed(tmp_path_factory.mktemp("austen"))
    return Task.from_config(OmegaConf.to_container(cfg.task, resolve=True))


def test_sizes_balance_and_labels(task):
    train, dev = read_split(task, "train", labelled=True), read_split(task, "dev", labelled=True)
    assert (len(train), len(dev)) == (austen_novel.TRAIN_PASSAGES, austen_novel.DEV_PASSAGES)
    # the same number from each novel (to one), so guessing one novel scores 1/6
    assert sorted(collections.Counter(e.label for e in train).values()) == [833] * 4 + [834] * 2
    assert sorted(collections.Counter(e.label for e in dev).values()) == [166] * 2 + [167] * 4
    assert task.labels == list(austen_novel.NOVELS) and task.num_labels == 6 and task.metric == "accuracy"
    assert all(len(e.texts) == 1 for e in train) and len({e.index for e in train}) == len(train)
    assert {e.label for e in read_split(task, "dev", labelled=False)} == {None}


def test_the_same_everywhere(task):
    first = [(e.texts, e.label) for e in read_split(task, "train", labelled=True)]
    austen_novel.build.cache_clear()
    assert [(e.texts, e.label) for e in read_split(task, "train", labelled=True)] == first


def test_dev_passages_come_from_dev_chapters_only():
    made = austen_novel.build()
    rng = random.Random(0)
    for label, novel in enumerate(austen_novel.NOVELS):
        chapters = austen_novel.chapters(austen_novel.novel_text(novel))
        text = {
            split: "\n".join(
                " ".join(sentences)
                for number, sentences in enumerate(chapters, start=1)
                if (number % austen_novel.DEV_EVERY == 0) == (split == "dev")
            )
            for split in ("train", "dev")
        }
        for split, other in (("train", "dev"), ("dev", "train")):
            mine = [passage for passage, novel_label in made[split] if novel_label == label]
            for passage in rng.sample(mine, 30):
                assert passage in text[split] and passage not in text[other]


def test_passages_carry_no_transcription_marks():
    passages = [passage for split in austen_novel.build().values() for passage, _ in split]
    words = [len(p.split()) for p in passages]
    assert min(words) >= austen_novel.MIN_WORDS and max(words) <= austen_novel.MAX_WORDS
    assert not any("_" in p for p in passages)  # italics in three of the transcriptions only
    assert not any(re.search(r"\b(Mr|Mrs)\b(?!\.)", p) for p in passages)  # Persuasion's "Mr Elliot"
    assert not any(re.search(r"VOLUME|THE END|FINIS|Signet|Crosbie", p) for p in passages)


def test_a_passage_is_two_to_four_whole_sentences():
    rng = random.Random(0)
    sentences = [f"Sentence number {n} has a few words in it." for n in range(40)]
    cut = austen_novel.passages(sentences, rng)
    assert " ".join(cut) == " ".join(sentences[: sum(p.count("Sentence") for p in cut)])
    assert all(2 <= p.count("Sentence") <= 4 for p in cut)
    # a sentence too long for any passage is skipped, never cut
    long = "word " * (austen_novel.MAX_WORDS + 1)
    assert all(long.strip() not in p for p in austen_novel.passages([long.strip(), *sentences[:4]], rng))


def test_the_datamodule_reads_it_and_inputs_check(tmp_path, task, bert_tokenizer):
    datamodule = TaskDataModule(task, bert_tokenizer, max_seq_length=128)
    datamodule.setup("fit")
    assert len(datamodule.train_set) == 5000 and len(datamodule.val_sets[0]) == 1000
    # MAX_WORDS keeps passages inside 128 tokens, bar a few
    assert sum(len(r["input_ids"]) == 128 for r in datamodule.train_set) < 0.02 * 5000
    checkpoint = tmp_path / "some.ckpt"
    checkpoint.touch()
    check_inputs(composed(tmp_path, f"init_from={checkpoint}"))  # no file to look for


def test_an_unknown_source_is_one_line(task):
    wrong = Task.from_config({**task.__dict__, "source": "austin_novel", "validation": [], "test": []})
    with pytest.raises(ConfigError, match=r"task.source='austin_novel' is not one of austen_novel"):
        read_split(wrong, "train", labelled=True)
    assert set(BUILTIN_SOURCES) == {"austen_novel"}


def test_files_still_win(tmp_path, task):
    rows = [{"passage": "It is a truth universally acknowledged.", "novel": "prideprejudice"}]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (example,) = read_split(task, "train", labelled=True, files={"train": str(path)})
    assert example.label == austen_novel.NOVELS.index("prideprejudice")


def test_fine_tunes_end_to_end(tmp_path, tiny_checkpoint):
    results = finetune(
        composed(
            tmp_path,
            f"init_from={tiny_checkpoint}",
            "task.epochs=1",
            "+trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2",
            "logger=none",
        )
    )
    assert results["task"] == "austen_novel" and 0 <= results["metrics"]["accuracy"] <= 1
