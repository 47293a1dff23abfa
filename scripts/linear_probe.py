"""How much of the built-in task a frozen encoder already holds: a linear probe per layer.

    python scripts/linear_probe.py CHECKPOINT [CHECKPOINT ...] [--max-seq-length 128] [--l2 1e-3]

Each CHECKPOINT (an ``init_from``: an electra-pretrain .ckpt or a transformers folder) encodes the
``task=austen_novel`` passages with its own tokenizer and without training. After the embeddings
and after each layer, two features per passage: the mean of its real tokens' vectors, and its
[CLS] vector. Each feature is standardised on the training passages, and a logistic regression
(``bag_of_words.fit``: L-BFGS, ``--l2`` x the squared weights) learns the novel from it; the
table gives its dev accuracy. Fine-tuning moves every weight, a probe none: a higher probe says
the encoder learnt something the task can read off directly, whatever fine-tuning then does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # the sibling script, run as a file
from bag_of_words import fit  # noqa: E402

from electra_lit.data.tasks.austen_novel import build  # noqa: E402
from electra_lit.models import Encoder  # noqa: E402
from electra_lit.pretrained import load_pretrained_encoder  # noqa: E402

BATCH = 100  # passages encoded at a time


@torch.no_grad()
def features(encoder: Encoder, tokenizer, passages: list[str], max_seq_length: int) -> torch.Tensor:
    """(layers + 1, passages, 2 x hidden): after the embeddings and each layer, the mean of the
    real tokens' vectors beside the [CLS] vector. The encoder's own forward runs; hooks keep what
    its embeddings (projected to the hidden size, where it has a projection) and layers return."""
    tokenizer.enable_truncation(max_seq_length)
    tokenizer.enable_padding()
    encoder.eval()
    states: list[torch.Tensor] = []  # (batch, seq, hidden) per depth, for the batch at hand
    first = encoder.embeddings if encoder.embeddings_project is None else encoder.embeddings_project
    stages = [first, *encoder.layers]
    hooks = [stage.register_forward_hook(lambda module, inputs, output: states.append(output)) for stage in stages]
    batches = []
    try:
        for start in range(0, len(passages), BATCH):
            encoded = tokenizer.encode_batch(passages[start : start + BATCH])
            ids = torch.tensor([e.ids for e in encoded])  # (batch, seq)
            real = torch.tensor([e.attention_mask for e in encoded])  # (batch, seq), 1 = a real token
            states.clear()
            encoder(ids, torch.zeros_like(ids), real)
            weights = real[..., None].float()  # (batch, seq, 1)
            pooled = [torch.cat([(h * weights).sum(1) / weights.sum(1), h[:, 0]], 1) for h in states]
            batches.append(torch.stack(pooled))
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(batches, 1)


def probe(train_x: torch.Tensor, train_y: torch.Tensor, dev_x: torch.Tensor, dev_y: torch.Tensor, l2: float) -> float:
    """Dev accuracy of a logistic regression on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    classes = int(max(train_y.max(), dev_y.max())) + 1
    weight, bias = fit((train_x - mean) / std, train_y, classes, l2)
    return (((dev_x - mean) / std @ weight + bias).argmax(1) == dev_y).float().mean().item()


def evaluate(
    encoder: Encoder, tokenizer, splits: dict[str, list[tuple[str, int]]], max_seq_length: int, l2: float
) -> list[tuple[float, float]]:
    """(mean-pooled accuracy, [CLS] accuracy) after the embeddings (index 0) and each layer."""
    (train_text, train_y), (dev_text, dev_y) = (zip(*splits[s]) for s in ("train", "dev"))
    train_y, dev_y = torch.tensor(train_y), torch.tensor(dev_y)
    train_x = features(encoder, tokenizer, list(train_text), max_seq_length)
    dev_x = features(encoder, tokenizer, list(dev_text), max_seq_length)
    hidden = train_x.shape[2] // 2
    return [
        tuple(
            probe(train_x[i, :, part], train_y, dev_x[i, :, part], dev_y, l2)
            for part in (slice(0, hidden), slice(hidden, None))
        )
        for i in range(train_x.shape[0])
    ]


def table(results: dict[str, list[tuple[float, float]]]) -> str:
    """Markdown: a row per checkpoint and feature, a column per depth (blank past a shallower encoder's top)."""
    depth = max(len(accuracy) for accuracy in results.values())
    lines = [
        "| checkpoint | features | embeddings | " + " | ".join(f"layer {i}" for i in range(1, depth)) + " |",
        "|---|---|" + "---|" * depth,
    ]
    for checkpoint, accuracy in results.items():
        for column, name in enumerate(("mean of tokens", "[CLS]")):
            cells = [f"{a[column]:.3f}" for a in accuracy] + [""] * (depth - len(accuracy))
            lines.append(f"| {checkpoint} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="init_from paths: .ckpt files or transformers folders")
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokens per passage (fine-tuning's default)")
    parser.add_argument("--l2", type=float, default=1e-3, help="weight of the squared-weights penalty")
    args = parser.parse_args(argv)
    splits = build()
    results = {}
    for checkpoint in args.checkpoints:
        loaded = load_pretrained_encoder(checkpoint)
        results[checkpoint] = evaluate(loaded.encoder, loaded.tokenizer, splits, args.max_seq_length, args.l2)
    print(table(results))


if __name__ == "__main__":
    main()
