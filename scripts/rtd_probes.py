"""Probes of replaced-token detection: what a pretraining run's discriminator tells apart, and what
simpler detectors tell apart on the same data.

    python scripts/rtd_probes.py state RUN_DIR [--batches 8] [--unigram-batches 20] [--seed 0]
    python scripts/rtd_probes.py alone RUN_DIR [--steps 400] [--lr 5e-4] [--warmup 100] [--eval-every 100]
                                 [--eval-batches 4] [--unigram-batches 20] [--sinusoidal-positions] [--seed 0]
                                 [OVERRIDE ...]
    python scripts/rtd_probes.py bigram RUN_DIR [--train-batches 400] [--batches 8] [--seed 0]

RUN_DIR is a finished ``electra-pretrain`` run of a replaced-token-detection objective (``electra``,
``electra_15``): its config.yaml rebuilds the data, its tokenizer/ (or the config's tokenizer)
the tokens, and checkpoints/last.ckpt holds the generator and discriminator.

Two corruptions of the masked positions are compared throughout:

- ``generator``: the run's own sampler, as in training (its generator at its temperature);
- ``unigram``: a token drawn from the corpus unigram distribution of the tokens masking may pick,
  whatever the context. Such a replacement is as frequent as the tokens it replaces, so only
  context gives it away: the easiest test of "does the discriminator read context at all".

Subcommands:

- ``state``: the run's discriminator on ``--batches`` validation batches. Exact AUC and gain
  against both corruptions, quantiles of its probabilities, and the mean cosine between the token
  vectors of a sequence after the embeddings and after each layer (near 1: every token looks the
  same to the head, which then can only answer the prior).
- ``alone``: a fresh discriminator, built from the run's config with the OVERRIDEs applied
  (``model.discriminator.num_layers=2``; ``+key=value`` adds a key), trained by itself against
  unigram replacements (no generator), reporting train loss, val AUC and gain every
  ``--eval-every`` steps on a fixed set of corrupted validation batches. Whether the architecture
  and data can learn detection at all, apart from the generator game. ``--sinusoidal-positions``
  starts the position table from the Transformer's sinusoids (at the init's scale).
- ``bigram``: a count detector with no learning: a token's score is the surprise of its left and
  right bigrams, from ``--train-batches`` training batches (add-0.1 smoothing). How much of the
  detection local statistics give, against both corruptions.

AUCs are exact (torchmetrics ``binary_auroc`` without thresholds, over every real token), unlike
the 200-bin ``val/disc_auc`` the run logs; gain is ``1 - BCE / H(p)``, p the replaced share (see
electra_lit.lit.modules.metrics). Everything runs on the CPU; set OMP_NUM_THREADS to share it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from electra_lit.data.tokenizer import SpecialTokenIds, load_tokenizer
from electra_lit.errors import ConfigError
from electra_lit.lit.modules.metrics import DetectionGain
from electra_lit.lit.modules.pretrain import ElectraPretrainModule
from electra_lit.objectives.common import corrupt, weighted_mean, write_samples
from electra_lit.optim import electra_lr_lambda, parameter_groups
from electra_lit.runs.pretrain import build_datamodule, build_module
from electra_lit.runs.run_dir import RunDir

Batch = dict[str, torch.Tensor]
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
BIGRAM_SMOOTHING = 0.1  # add-k: an unseen bigram is rare, not impossible
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ProbeError(Exception):
    """A run these probes cannot read, reported as one line."""


# --- the run: config, tokenizer, data, checkpoint ---------------------------------------------------


def missing_parts(run: RunDir) -> list[str]:
    return [str(p) for p in (run.config, run.last_checkpoint) if not p.is_file()]


def parse_value(text: str) -> object:
    """The value of ``key=value`` as YAML reads it, and 5e-4 as a float (YAML 1.1 wants 5.0e-4)."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and SCIENTIFIC.fullmatch(value):
        return float(value)
    return value


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """``key=value`` sets an existing key (a typo fails instead of adding a key nobody reads);
    ``+key=value`` adds one."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.lstrip("+"):
            raise ProbeError(f"override {override!r} is not key=value")
        adding, key = key.startswith("+"), key.lstrip("+")
        if not adding and OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ProbeError(f"override {override!r}: the run's config has no key {key} (+{key}=... adds it)")
        OmegaConf.update(cfg, key, parse_value(text), merge=True)


def load_config(run: RunDir, overrides: Iterable[str] = ()) -> DictConfig:
    cfg = OmegaConf.load(run.config)
    # the probes read a few hundred batches at most: worker processes would cost more than they save
    OmegaConf.update(cfg, "data.num_workers", 0)
    apply_overrides(cfg, overrides)
    return cfg


def load_run_tokenizer(cfg: DictConfig, run: RunDir) -> Tokenizer:
    """The tokenizer the run saved (the one it trained with), else the config's."""
    return load_tokenizer(str(run.tokenizer)) if run.tokenizer.is_dir() else instantiate(cfg.tokenizer)


def load_data(cfg: DictConfig, tokenizer: Tokenizer) -> L.LightningDataModule:
    datamodule = build_datamodule(cfg, tokenizer)
    datamodule.setup("fit")
    return datamodule


def load_module(run: RunDir) -> ElectraPretrainModule:
    module = ElectraPretrainModule.load_from_checkpoint(run.last_checkpoint, map_location="cpu").eval()
    check_detection(module)
    return module


def load_trained(run: RunDir) -> tuple[Tokenizer, L.LightningDataModule, ElectraPretrainModule]:
    """The run's tokenizer, its data (from its saved config) and its trained last checkpoint."""
    cfg = load_config(run)
    tokenizer = load_run_tokenizer(cfg, run)
    return tokenizer, load_data(cfg, tokenizer), load_module(run)


def check_detection(module: ElectraPretrainModule) -> None:
    if module.objective.main_head != "rtd":
        name = module.hparams.objective.get("_target_", type(module.objective).__name__)
        raise ProbeError(f"objective {name} trains no discriminator: these probes need replaced-token detection")


def first(loader: Iterable[Batch], n: int) -> Iterator[Batch]:
    return itertools.islice(loader, n)


def forever(datamodule: L.LightningDataModule) -> Iterator[Batch]:
    """Training batches, epoch after epoch."""
    while True:
        yield from datamodule.train_dataloader()


# --- corruptions -------------------------------------------------------------------------------------


def originals(batch: Batch) -> torch.Tensor:
    """(B, S) the tokens before masking: each masked position gets its original token back."""
    return batch["input_ids"].scatter(1, batch["masked_positions"], batch["masked_ids"])


def unigram(batches: Iterable[Batch], vocab_size: int, never_masked: tuple[int, ...]) -> torch.Tensor:
    """(V,) the distribution of the tokens masking may pick ([UNK] and the words, not padding,
    [CLS], [SEP] or [MASK]): the distribution of the tokens a corruption replaces."""
    counts = torch.zeros(vocab_size)
    special = torch.tensor(never_masked)
    for batch in batches:
        ids = originals(batch)
        maskable = batch["attention_mask"].bool() & ~torch.isin(ids, special)
        counts += torch.bincount(ids[maskable], minlength=vocab_size).float()
    return counts / counts.sum()


def corrupt_with_unigram(batch: Batch, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input with a unigram draw at every masked position, and the (B, S) replaced labels."""
    masked = batch["masked_ids"]  # (B, P)
    sampled = torch.multinomial(probs, masked.numel(), replacement=True).view_as(masked)
    return write_samples(batch, sampled)


def corpus_unigram(datamodule: L.LightningDataModule, tokenizer: Tokenizer, batches: int) -> torch.Tensor:
    never_masked = SpecialTokenIds.from_tokenizer(tokenizer).never_masked
    return unigram(first(datamodule.train_dataloader(), batches), tokenizer.get_vocab_size(), never_masked)


# --- scores ------------------------------------------------------------------------------------------


def exact_auc(scores: list[torch.Tensor], labels: list[torch.Tensor]) -> float:
    """AUC of flat score and label tensors, pooled; every distinct score is a threshold."""
    return binary_auroc(torch.cat(scores).float(), torch.cat(labels).long()).item()


def detection_gain(logits: list[torch.Tensor], labels: list[torch.Tensor]) -> float:
    gain = DetectionGain()
    for lg, lb in zip(logits, labels):
        gain.update(lg, lb, torch.ones_like(lg))
    return gain.compute().item()


def token_cosine(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Sum of the cosines between the vectors (B, S, D) of every ordered pair of distinct real
    tokens (``mask`` (B, S)) in a sequence, and the number of pairs.

    |sum of unit vectors|^2 is the sum of cosines over all pairs, the n self-pairs (1 each)
    included: O(B S D) instead of a (B, S, S) matrix."""
    mask = mask.float()
    unit = F.normalize(hidden.float(), dim=-1) * mask[..., None]  # padding contributes nothing
    total = unit.sum(1)  # (B, D)
    n = mask.sum(1)  # (B,)
    return ((total * total).sum(-1) - n).sum().item(), (n * (n - 1)).sum().item()


@contextmanager
def recorded_hidden(discriminator: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, every forward appends the embeddings' output and then each layer's, (B, S, D)."""
    encoder = discriminator.encoder
    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _in, out: outputs.append(out)) for m in [encoder.embeddings, *encoder.layers]
    ]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


# --- state -------------------------------------------------------------------------------------------


@torch.no_grad()
def probe_state(run: RunDir, batches: int, unigram_batches: int) -> list[str]:
    tokenizer, datamodule, module = load_trained(run)
    generator, discriminator, sampling = module.generator, module.main_model, module.objective.sampling
    probs = corpus_unigram(datamodule, tokenizer, unigram_batches)
    names = ("embeddings", *(f"layer {i + 1}" for i in range(len(discriminator.encoder.layers))))
    cosines, pairs = torch.zeros(len(names), dtype=torch.float64), 0.0
    results = {sampling.sampler: ([], []), "unigram": ([], [])}  # name -> (logits, labels) per batch
    tokens = seen = 0
    for batch in first(datamodule.val_dataloader(), batches):
        seen += 1
        real = batch["attention_mask"].bool()
        tokens += int(real.sum())
        own = corrupt(sampling, generator, discriminator, batch)
        # recorded around the discriminator alone: the generator may share its embeddings module
        with recorded_hidden(discriminator) as hidden:
            logits = discriminator(own.input_ids, batch["token_type_ids"], batch["attention_mask"])
        results[sampling.sampler][0].append(logits[real])
        results[sampling.sampler][1].append(own.replaced[real])
        for i, h in enumerate(hidden):
            cosines[i] += token_cosine(h, real)[0]
        pairs += token_cosine(hidden[0], real)[1]
        ids, replaced = corrupt_with_unigram(batch, probs)
        logits = discriminator(ids, batch["token_type_ids"], batch["attention_mask"])
        results["unigram"][0].append(logits[real])
        results["unigram"][1].append(replaced[real])

    lines = [
        f"{run.root}: {tokens:,} real tokens of {seen} validation batches",
        "against    AUC    gain    replaced",
    ]
    for name, (logits, labels) in results.items():
        share = torch.cat(labels).float().mean().item()
        lines.append(f"{name:<10} {exact_auc(logits, labels):.3f}  {detection_gain(logits, labels):+.3f}  {share:.3f}")
    own_logits, own_labels = results[sampling.sampler]
    p, replaced = torch.sigmoid(torch.cat(own_logits)), torch.cat(own_labels)
    quantiles = torch.quantile(p, torch.tensor(QUANTILES))
    lines.append(
        f"P(replaced) vs {sampling.sampler}: quantiles "
        + "  ".join(f"{q:.0%} {v:.4f}" for q, v in zip(QUANTILES, quantiles.tolist()))
    )
    lines.append(
        f"mean P(replaced): replaced tokens {p[replaced].mean():.4f}, original tokens {p[~replaced].mean():.4f}"
    )
    lines.append(
        "mean token cosine: " + "  ".join(f"{name} {c / pairs:.3f}" for name, c in zip(names, cosines.tolist()))
    )
    return lines


# --- alone -------------------------------------------------------------------------------------------


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """(positions, dim) the Transformer's table: sin and cos of position / 10000^(2i / dim)."""
    t = torch.arange(positions).float()[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2).float() / dim)  # (ceil(dim / 2),)
    table = torch.zeros(positions, dim)
    table[:, 0::2] = torch.sin(t * freq)
    table[:, 1::2] = torch.cos(t * freq)[:, : dim // 2]
    return table


@torch.no_grad()
def use_sinusoidal_positions(discriminator: nn.Module) -> None:
    """Sinusoids in the position table, scaled to the std of the random init they replace."""
    weight = discriminator.encoder.embeddings.position.weight
    table = sinusoid_table(*weight.shape)
    weight.copy_(table * weight.std() / table.std())


@torch.no_grad()
def evaluate(discriminator: nn.Module, eval_set: list[tuple[Batch, torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """AUC and gain on the fixed corrupted batches: (batch, corrupted ids, replaced labels)."""
    discriminator.eval()
    logits, labels = [], []
    for batch, ids, replaced in eval_set:
        real = batch["attention_mask"].bool()
        logits.append(discriminator(ids, batch["token_type_ids"], batch["attention_mask"])[real])
        labels.append(replaced[real])
    discriminator.train()
    return exact_auc(logits, labels), detection_gain(logits, labels)


def train_alone(run: RunDir, args: argparse.Namespace) -> Iterator[str]:
    """Yields a header, then a row per evaluation as training reaches it."""
    cfg = load_config(run, args.overrides)
    tokenizer = load_run_tokenizer(cfg, run)
    datamodule = load_data(cfg, tokenizer)
    try:
        module = build_module(cfg, tokenizer.get_vocab_size())
    except (TypeError, ValueError) as err:  # the model's own checks (sizes), which name no key
        raise ProbeError(f"no model from the run's config with {' '.join(args.overrides)}: {err}") from None
    check_detection(module)
    discriminator = module.main_model.train()  # the generator is built too, and never used
    if args.sinusoidal_positions:
        use_sinusoidal_positions(discriminator)
    probs = corpus_unigram(datamodule, tokenizer, args.unigram_batches)
    # one draw of the corruption for every evaluation: AUCs then differ by the model only
    eval_set = [(b, *corrupt_with_unigram(b, probs)) for b in first(datamodule.val_dataloader(), args.eval_batches)]

    opt = cfg.optimizer
    optimizer = torch.optim.AdamW(
        parameter_groups(discriminator, opt.weight_decay), lr=args.lr, betas=tuple(opt.betas), eps=opt.eps
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, electra_lr_lambda(args.steps, args.warmup))
    size = sum(p.numel() for p in discriminator.parameters())
    yield f"discriminator alone vs unigram replacements: {size:,} parameters, {args.steps} steps at lr {args.lr:g}"
    yield " step  seconds  train loss  val AUC  val gain"
    start, losses = time.perf_counter(), []
    batches = forever(datamodule)
    for step in range(1, args.steps + 1):
        batch = next(batches)
        ids, replaced = corrupt_with_unigram(batch, probs)
        logits = discriminator(ids, batch["token_type_ids"], batch["attention_mask"])  # (B, S)
        bce = F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="none")
        loss = weighted_mean(bce, batch["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(discriminator.parameters(), 1.0)  # as in pretraining
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            auc, gain = evaluate(discriminator, eval_set)
            seconds = time.perf_counter() - start
            # the train loss is the mean since the last evaluation: one step's is noise
            yield f"{step:5d}  {seconds:7.0f}  {sum(losses) / len(losses):10.4f}  {auc:7.3f}  {gain:+8.3f}"
            losses = []


# --- bigram ------------------------------------------------------------------------------------------


class BigramCounts:
    """Counts of adjacent real-token pairs, stored sparsely: a (V, V) table is 3.7 GB at BERT's vocab.

    ``surprise(prev, next)`` is -log p(next | prev) = -log (c(prev, next) + k) / (c(prev) + k V),
    c(prev) the pairs that start with prev."""

    def __init__(self, batches: Iterable[Batch], vocab_size: int, smoothing: float = BIGRAM_SMOOTHING):
        self.vocab_size, self.smoothing = vocab_size, smoothing
        codes = []
        for batch in batches:
            ids, real = originals(batch), batch["attention_mask"].bool()
            both = real[:, :-1] & real[:, 1:]  # (B, S - 1) pairs inside the sequence
            codes.append((ids[:, :-1] * vocab_size + ids[:, 1:])[both])
        self.codes, self.counts = torch.unique(torch.cat(codes), return_counts=True)  # sorted codes
        self.starts = torch.zeros(vocab_size, dtype=torch.long).index_add_(0, self.codes // vocab_size, self.counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def count(self, prev: torch.Tensor, next_: torch.Tensor) -> torch.Tensor:
        code = prev * self.vocab_size + next_
        index = torch.searchsorted(self.codes, code).clamp_max(len(self.codes) - 1)
        return torch.where(self.codes[index] == code, self.counts[index], 0)

    def surprise(self, prev: torch.Tensor, next_: torch.Tensor) -> torch.Tensor:
        k = self.smoothing
        return -torch.log((self.count(prev, next_) + k) / (self.starts[prev] + k * self.vocab_size))

    def score(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S): the surprise of the bigram ending at each token plus that of the one starting
        there, pairs with padding left out."""
        pair = self.surprise(ids[:, :-1], ids[:, 1:]) * (attention_mask[:, :-1] * attention_mask[:, 1:])
        score = torch.zeros(ids.shape)
        score[:, 1:] += pair  # left bigram
        score[:, :-1] += pair  # right bigram
        return score


@torch.no_grad()
def probe_bigram(run: RunDir, train_batches: int, batches: int) -> list[str]:
    tokenizer, datamodule, module = load_trained(run)
    sampling = module.objective.sampling
    vocab_size = tokenizer.get_vocab_size()
    bigrams = BigramCounts(first(datamodule.train_dataloader(), train_batches), vocab_size)
    probs = corpus_unigram(datamodule, tokenizer, train_batches)
    scores = {"unigram": ([], []), sampling.sampler: ([], [])}  # name -> (scores, labels) per batch
    for batch in first(datamodule.val_dataloader(), batches):
        real = batch["attention_mask"].bool()
        own = corrupt(sampling, module.generator, module.main_model, batch)
        for name, (ids, replaced) in (
            ("unigram", corrupt_with_unigram(batch, probs)),
            (sampling.sampler, (own.input_ids, own.replaced)),
        ):
            scores[name][0].append(bigrams.score(ids, batch["attention_mask"])[real])
            scores[name][1].append(replaced[real])
    lines = [
        f"bigram counts of {train_batches} training batches: {bigrams.total:,} pairs, {len(bigrams.codes):,} distinct",
        "against    bigram AUC",
    ]
    lines += [f"{name:<10} {exact_auc(s, labels):.3f}" for name, (s, labels) in scores.items()]
    return lines


# --- command line ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished electra-pretrain run folder")
    common.add_argument("--seed", type=int, default=0, help="seeds the samplers and the fresh model")

    state = commands.add_parser("state", parents=[common], help="the run's discriminator, probed")
    state.add_argument("--batches", type=int, default=8, help="validation batches")
    state.add_argument("--unigram-batches", type=int, default=20, help="training batches the unigram is counted on")

    alone = commands.add_parser("alone", parents=[common], help="a fresh discriminator against unigram replacements")
    alone.add_argument("--steps", type=int, default=400)
    alone.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    alone.add_argument("--warmup", type=int, default=100, help="linear warmup steps, then linear decay to 0")
    alone.add_argument("--eval-every", type=int, default=100)
    alone.add_argument("--eval-batches", type=int, default=4, help="validation batches of each evaluation")
    alone.add_argument("--unigram-batches", type=int, default=20, help="training batches the unigram is counted on")
    alone.add_argument("--sinusoidal-positions", action="store_true", help="start the position table from sinusoids")
    alone.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="key=value on the run's config")

    bigram = commands.add_parser("bigram", parents=[common], help="a count bigram detector")
    bigram.add_argument("--train-batches", type=int, default=400, help="training batches the counts come from")
    bigram.add_argument("--batches", type=int, default=8, help="validation batches")

    # OVERRIDEs may follow the options too, where one nargs="*" positional cannot collect them
    args, extra = parser.parse_known_args(argv)
    if args.command == "alone" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run = RunDir(args.run_dir)
    missing = missing_parts(run)
    if missing:
        parser.error(f"{args.run_dir} is not a finished pretraining run: no {' and no '.join(missing)}")
    L.seed_everything(args.seed, verbose=False)
    try:
        if args.command == "state":
            lines: Iterable[str] = probe_state(run, args.batches, args.unigram_batches)
        elif args.command == "alone":
            lines = train_alone(run, args)
        else:
            lines = probe_bigram(run, args.train_batches, args.batches)
        for line in lines:
            print(line, flush=True)
    except (ProbeError, ConfigError) as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
