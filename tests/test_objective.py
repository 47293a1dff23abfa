"""Replaced token detection: labels, losses, sampling and the stop-gradient, on hand-built batches."""

import math

import pytest
import torch
import torch.nn.functional as F

from electra_lit.models import EncoderConfig, build_models
from electra_lit.objectives import ReplacedTokenDetection, gumbel_sample, uniform_sample

VOCAB = 50


def hand_batch():
    """Two sequences of 6 tokens; the second has 2 padding positions and one unused slot."""
    input_ids = torch.tensor([[2, 11, 4, 13, 4, 3], [2, 21, 4, 3, 0, 0]])  # 4 = [MASK]
    return {
        "input_ids": input_ids,
        "token_type_ids": torch.zeros_like(input_ids),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
        "masked_positions": torch.tensor([[2, 4], [2, 0]]),
        "masked_ids": torch.tensor([[12, 14], [22, 2]]),  # originals; slot (1, 1) unused
        "masked_weights": torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
    }


class FixedGenerator(torch.nn.Module):
    """Returns given logits, so the test decides what gets sampled."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, input_ids, token_type_ids, attention_mask, positions):
        return self.logits


class RecordingDiscriminator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, input_ids, token_type_ids, attention_mask):
        self.seen = input_ids
        return torch.linspace(-1, 1, input_ids.numel()).view_as(input_ids) + self.bias


def peaked_logits(targets):
    return F.one_hot(targets, VOCAB).float() * 100.0


def test_sample_equal_to_original_is_labelled_original():
    batch = hand_batch()
    disc = RecordingDiscriminator()
    out = ReplacedTokenDetection()(FixedGenerator(peaked_logits(batch["masked_ids"])), disc, batch)
    assert not out.disc.replaced.any()
    original = torch.tensor([[2, 11, 12, 13, 14, 3], [2, 21, 22, 3, 0, 0]])
    assert torch.equal(disc.seen, original)


def test_replacements_labels_and_losses_equal_an_independent_computation():
    batch = hand_batch()
    sampled = torch.tensor([[40, 14], [41, 2]])  # slot (0, 0) replaced, (0, 1) equals original
    gen = FixedGenerator(peaked_logits(sampled))
    disc = RecordingDiscriminator()
    out = ReplacedTokenDetection(disc_weight=50.0)(gen, disc, batch)

    assert torch.equal(disc.seen, torch.tensor([[2, 11, 40, 13, 14, 3], [2, 21, 41, 3, 0, 0]]))
    expected_labels = torch.zeros(2, 6, dtype=torch.bool)
    expected_labels[0, 2] = expected_labels[1, 2] = True
    assert torch.equal(out.disc.replaced, expected_labels)

    # generator loss: mean cross-entropy over the 3 used slots
    logits = peaked_logits(sampled)
    ce = [F.cross_entropy(logits[b, s][None], batch["masked_ids"][b, s][None]) for b, s in [(0, 0), (0, 1), (1, 0)]]
    torch.testing.assert_close(out.losses["gen_loss"], torch.stack(ce).mean())
    # discriminator loss: mean BCE over the 10 real tokens, [CLS] and [SEP] included
    disc_logits = torch.linspace(-1, 1, 12).view(2, 6) + 0.3
    real = batch["attention_mask"].bool()
    bce = [
        math.log1p(math.exp(-x)) if y else math.log1p(math.exp(x))
        for x, y in zip(disc_logits[real].tolist(), expected_labels[real].tolist())
    ]
    torch.testing.assert_close(out.losses["disc_loss"], torch.tensor(sum(bce) / 10))
    torch.testing.assert_close(out.loss, out.losses["gen_loss"] + 50.0 * out.losses["disc_loss"])


def test_no_gradient_reaches_the_generator_through_the_sample():
    gen, disc = build_models(
        EncoderConfig(vocab_size=VOCAB, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
        generator_fraction=0.5,
    )
    out = ReplacedTokenDetection()(gen, disc, hand_batch())
    out.losses["disc_loss"].backward()
    shared = {id(p) for p in gen.encoder.embeddings.parameters()}
    generator_only = [(n, p) for n, p in gen.named_parameters() if id(p) not in shared]
    assert generator_only
    assert all(p.grad is None for _, p in generator_only), [n for n, p in generator_only if p.grad is not None]
    assert disc.head_out.weight.grad is not None


def test_gumbel_sampling_matches_the_softmax_distribution():
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0]).expand(100_000, 4)
    counts = torch.bincount(gumbel_sample(logits), minlength=4).float() / 100_000
    torch.testing.assert_close(counts, torch.softmax(logits[0], 0), atol=0.006, rtol=0)
    cold = torch.bincount(gumbel_sample(logits, temperature=0.1), minlength=4).float() / 100_000
    assert cold[2] > 0.99


def test_gumbel_sampling_runs_in_fp32_for_bf16_logits():
    logits = torch.randn(8, 30).bfloat16()
    assert gumbel_sample(logits).dtype == torch.int64
    with pytest.raises(ValueError, match="temperature=0"):
        ReplacedTokenDetection(temperature=0)


# ------------------------------------------------------------------ released switches: disallow_correct, sampler
def test_disallow_correct_never_samples_the_original_and_keeps_the_others_odds():
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0]).expand(100_000, 4)
    disallow = torch.full((100_000,), 2)
    counts = torch.bincount(gumbel_sample(logits, disallow=disallow), minlength=4).float() / 100_000
    assert counts[2] == 0
    others = torch.softmax(torch.tensor([0.0, 1.0, -1.0]), 0)  # the softmax over the allowed ids 0, 1, 3
    torch.testing.assert_close(counts[[0, 1, 3]], others, atol=0.006, rtol=0)


def test_disallow_correct_replaces_every_masked_token_even_a_certain_generator():
    batch = hand_batch()
    gen = FixedGenerator(peaked_logits(batch["masked_ids"]))  # the generator is sure of the original
    disc = RecordingDiscriminator()
    plain = ReplacedTokenDetection()(gen, disc, batch)
    assert not plain.disc.replaced.any()
    out = ReplacedTokenDetection(disallow_correct=True)(gen, disc, batch)
    masked = torch.zeros(2, 6, dtype=torch.bool)
    masked[0, 2] = masked[0, 4] = masked[1, 2] = True  # the three used slots; slot (1, 1) is unused
    assert torch.equal(out.disc.replaced, masked)
    assert (disc.seen[masked] != torch.tensor([12, 14, 22])).all()
    assert torch.equal(disc.seen[~masked], hand_batch()["input_ids"][~masked])
    # the generator's loss and accuracy are the generator's own, whatever was drawn
    torch.testing.assert_close(out.losses["gen_loss"], plain.losses["gen_loss"])
    assert torch.equal(out.gen.predicted, batch["masked_ids"])


def test_uniform_sample_is_uniform_over_the_vocabulary_or_over_the_other_ids():
    torch.manual_seed(0)
    original = torch.full((200_000,), 7)
    counts = torch.bincount(uniform_sample(original, 10), minlength=10).float() / 200_000
    torch.testing.assert_close(counts, torch.full((10,), 0.1), atol=0.004, rtol=0)
    counts = torch.bincount(uniform_sample(original, 10, disallow_correct=True), minlength=10).float() / 200_000
    assert counts[7] == 0
    torch.testing.assert_close(counts[torch.arange(10) != 7], torch.full((9,), 1 / 9), atol=0.004, rtol=0)


def test_uniform_sampler_needs_no_generator_and_its_gen_loss_is_log_vocab():
    objective = ReplacedTokenDetection(sampler="uniform", disallow_correct=True)
    assert objective.uses_generator is False and ReplacedTokenDetection().uses_generator is True
    gen, disc = build_models(
        EncoderConfig(vocab_size=VOCAB, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
        with_generator=objective.uses_generator,
    )
    assert gen is None
    torch.manual_seed(0)
    batch = hand_batch()
    out = objective(gen, disc, batch)
    torch.testing.assert_close(out.losses["gen_loss"], torch.tensor(math.log(VOCAB)))  # as released: a constant
    torch.testing.assert_close(out.loss, out.losses["gen_loss"] + 50.0 * out.losses["disc_loss"])
    assert out.gen is None  # no generator, no gen_acc
    used = batch["masked_weights"] > 0
    rows, slots = used.nonzero(as_tuple=True)
    assert out.disc.replaced[rows, batch["masked_positions"][rows, slots]].all()  # disallow_correct
    out.loss.backward()
    assert disc.head_out.weight.grad is not None


def test_replace_mlm_takes_the_sampler_keys_and_a_bad_sampler_is_refused():
    from electra_lit.objectives import ReplaceMLM

    assert ReplaceMLM(sampler="uniform").uses_generator is False
    with pytest.raises(
        ValueError, match=r"^objective.sampler=gumbel is not a sampler; choose one of: generator, uniform$"
    ):
        ReplacedTokenDetection(sampler="gumbel")
