"""``task=austen_novel``: which of Jane Austen's six novels a passage of 2 to 4 sentences is from.

A downstream task that ships with the package: its examples are cut from the built-in novels
(``electra_lit/assets/austen``), so it needs no download, and it is the same everywhere because
every choice below is a fixed rule or a fixed seed.

- Chapters: every fifth chapter of a novel (its 5th, 10th, ...) is a dev chapter, the others
  train chapters, so no dev passage shares a chapter, nor a scene, with a training passage.
- Passages: each chapter's sentences (the pretraining corpus's splitter) are cut in order into
  runs of 2, 3 or 4 (drawn at random), shortened to fit ``MAX_WORDS`` so that little is lost to
  ``max_seq_length=128``; a passage never spans two chapters.
- Balance: the same number of passages from each novel (``TRAIN_PASSAGES`` and ``DEV_PASSAGES``
  in all), drawn without replacement, so the majority-class baseline is 1/6.
- Leaks: what the Gutenberg transcriptions differ in, not Austen, is taken out: the underscores
  that mark italics in three of them, "Mr"/"Mrs" without a full stop in one, headings in capitals
  ("VOLUME II", "THE END") and the editor's note after Northanger Abbey. Character and place
  names stay: they are the text, and most passages name someone (docs/finetuning.md).

The examples are built once per process (about 0.5 s) and kept.
"""

from __future__ import annotations

import gzip
import random
import re
from functools import cache

from electra_lit.data.pretraining.corpus import TextCorpus, builtin_corpus_dir, sentences_of
from electra_lit.data.tasks.glue import Example, Task
from electra_lit.errors import ConfigError

NOVELS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility")
DEV_EVERY = 5  # chapter i (from 1) is a dev chapter when i % DEV_EVERY == 0
TRAIN_PASSAGES, DEV_PASSAGES = 5000, 1000
SENTENCES = (2, 3, 4)  # sentences per passage, drawn uniformly
MIN_WORDS, MAX_WORDS = 12, 90  # a passage's words: enough to say something, and fits 128 tokens
SEED = 17

# What ends a novel's text: later lines are the transcription's, not Austen's.
_END = re.compile(r"^\s*(THE END|FINIS|Finis|A NOTE ON THE TEXT)\s*$", re.MULTILINE)
_TITLE_WITHOUT_STOP = re.compile(r"\b(Mr|Mrs|Dr)\b(?!\.)")  # Persuasion's "Mr Elliot"


def novel_text(novel: str) -> str:
    """A novel's text as Austen wrote it: the end matter cut, the transcription's markup taken out."""
    with gzip.open(builtin_corpus_dir() / f"{novel}.txt.gz", "rt", encoding="utf-8") as f:
        text = _END.split(f.read(), maxsplit=1)[0]
    return _TITLE_WITHOUT_STOP.sub(r"\1.", text.replace("_", ""))


def is_prose(sentence: str) -> bool:
    """False for headings and signatures in capitals ("VOLUME II", "* * *", '"WILLIAM COLLINS"')."""
    return any(c.islower() for c in sentence)


def chapters(text: str) -> list[list[str]]:
    """A novel's chapters (pretraining's documents), each a list of its sentences."""
    parts = TextCorpus(document="chapter").texts({"text": text})
    return [[s for s in sentences_of(part) if is_prose(s)] for part in parts]


def passages(sentences: list[str], rng: random.Random) -> list[str]:
    """A chapter cut in order into passages of 2 to 4 sentences and MIN_WORDS to MAX_WORDS words;
    a passage too long loses its last sentences (down to 2), a sentence that cannot fit is skipped."""
    found, start = [], 0
    while start + min(SENTENCES) <= len(sentences):
        size = rng.choice(SENTENCES)
        words = [len(s.split()) for s in sentences[start : start + size]]
        while len(words) > min(SENTENCES) and sum(words) > MAX_WORDS:
            words.pop()
        if len(words) < min(SENTENCES) or not MIN_WORDS <= sum(words) <= MAX_WORDS:
            start += 1  # too long even as two sentences, or too short: move on by one sentence
            continue
        found.append(" ".join(sentences[start : start + len(words)]))
        start += len(words)
    return found


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by at most one (the first ones larger)."""
    return [total // parts + (n < total % parts) for n in range(parts)]


@cache
def build() -> dict[str, list[tuple[str, int]]]:
    """``{"train": [(passage, novel index), ...], "dev": [...]}``: the whole task, built once."""
    rng = random.Random(SEED)
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "dev": []}
    for label, novel in enumerate(NOVELS):
        pools: dict[str, list[str]] = {"train": [], "dev": []}
        for number, sentences in enumerate(chapters(novel_text(novel)), start=1):
            pools["dev" if number % DEV_EVERY == 0 else "train"].extend(passages(sentences, rng))
        for split, total in (("train", TRAIN_PASSAGES), ("dev", DEV_PASSAGES)):
            want = shares(total, len(NOVELS))[label]
            if len(pools[split]) < want:  # the constants above were changed beyond what a novel holds
                raise ValueError(f"{novel}: {len(pools[split])} {split} passages, fewer than the {want} wanted")
            splits[split].extend((passage, label) for passage in rng.sample(pools[split], want))
    rng.shuffle(splits["train"])  # the loader shuffles too; this only keeps a file written from it mixed
    return splits


def read_split(task: Task, split: str, labelled: bool) -> list[Example]:
    """``split`` ("train" or "dev") as examples of ``task`` (its labels name the novels)."""
    made = build()
    if split not in made:
        raise ConfigError(f"task {task.name}: no split {split!r}; the built-in novel task has: {', '.join(made)}")
    if list(task.labels or []) != list(NOVELS):
        raise ConfigError(f"task {task.name}: task.labels must be {list(NOVELS)}, the novels in label order")
    return [
        Example((passage,), label if labelled else None, f"{split}-{n}")
        for n, (passage, label) in enumerate(made[split])
    ]
