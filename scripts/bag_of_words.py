"""A baseline with no encoder for the built-in task: logistic regression on which words a passage
contains (a bag of words), beside the majority class. It tells how much of ``task=austen_novel``
a model can get from vocabulary alone (character names, places, each novel's favourite words).

    python scripts/bag_of_words.py [--min-count 2] [--l2 1e-3] [--max-words N]

Words are lowercased runs of letters; the vocabulary is the training passages' words seen at least
``--min-count`` times. ``--max-words N`` keeps only each passage's first N words (a fine-tuning
run's ``max_seq_length`` truncates its word pieces so). Full-batch L-BFGS on the mean cross-entropy
plus ``--l2`` x the squared weights; prints the dev accuracy.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import torch

from electra_lit.data.tasks.austen_novel import build

WORD = re.compile(r"[a-z]+")


def words(text: str, limit: int | None = None) -> list[str]:
    return WORD.findall(text.lower())[:limit]


def vocabulary(passages: list[str], min_count: int, limit: int | None = None) -> dict[str, int]:
    counts = Counter(w for p in passages for w in set(words(p, limit)))
    return {w: i for i, w in enumerate(sorted(w for w, c in counts.items() if c >= min_count))}


def features(passages: list[str], vocab: dict[str, int], limit: int | None = None) -> torch.Tensor:
    """(passages, vocab) of 0/1: which vocabulary words each passage contains."""
    x = torch.zeros(len(passages), len(vocab))
    for row, passage in enumerate(passages):
        columns = [vocab[w] for w in set(words(passage, limit)) if w in vocab]
        x[row, columns] = 1.0
    return x


def fit(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (vocab, classes) and bias of a logistic regression, by full-batch L-BFGS."""
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def evaluate(splits: dict[str, list[tuple[str, int]]], min_count: int, l2: float, limit: int | None) -> dict:
    """Dev accuracy of the bag of words and of the majority class of the training split."""
    train, dev = splits["train"], splits["dev"]
    vocab = vocabulary([p for p, _ in train], min_count, limit)
    y_train, y_dev = torch.tensor([label for _, label in train]), torch.tensor([label for _, label in dev])
    classes = int(max(y_train.max(), y_dev.max())) + 1
    weight, bias = fit(features([p for p, _ in train], vocab, limit), y_train, classes, l2)
    predicted = (features([p for p, _ in dev], vocab, limit) @ weight + bias).argmax(1)
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    return {
        "vocabulary": len(vocab),
        "bag_of_words": (predicted == y_dev).float().mean().item(),
        "majority": (y_dev == majority).float().mean().item(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-count", type=int, default=2, help="training passages a word must be in")
    parser.add_argument("--l2", type=float, default=1e-3, help="weight of the squared-weights penalty")
    parser.add_argument("--max-words", type=int, default=None, help="only each passage's first N words")
    args = parser.parse_args(argv)
    result = evaluate(build(), args.min_count, args.l2, args.max_words)
    print(
        f"austen_novel dev accuracy: bag of words {result['bag_of_words']:.3f} "
        f"({result['vocabulary']} words), majority class {result['majority']:.3f}"
    )


if __name__ == "__main__":
    main()
