"""The paper's ablation objectives and the sharing modes, on hand-built batches and tiny models."""

import math

import pytest
import torch
from test_objective import VOCAB, FixedGenerator, RecordingDiscriminator, hand_batch, peaked_logits

from electra_lit.lit.modules.metrics import PretrainMetrics
from electra_lit.models import EncoderConfig, GDESWordEmbedding, build_models, generator_config
from electra_lit.objectives import AllTokensMLM, MaskedLanguageModeling, ReplacedTokenDetection, ReplaceMLM

SAMPLED = torch.tensor([[40, 14], [41, 2]])  # slot (0, 0) replaced, (0, 1) equal to the original
CORRUPTED = torch.tensor([[2, 11, 40, 13, 14, 3], [2, 21, 41, 3, 0, 0]])
ORIGINAL = torch.tensor([[2, 11, 12, 13, 14, 3], [2, 21, 22, 3, 0, 0]])


def log_softmax_at(logits, index):
    return logits[index].item() - math.log(sum(math.exp(x) for x in logits.tolist()))


class FixedMLM(torch.nn.Module):
    """A masked LM returning given logits at the positions; records what it saw."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, input_ids, token_type_ids, attention_mask, positions):
        self.seen = input_ids
        return self.logits


def test_electra_15_puts_the_discriminator_loss_on_masked_positions_only():
    batch = hand_batch()
    disc = RecordingDiscriminator()
    out = ReplacedTokenDetection(masked_only=True)(FixedGenerator(peaked_logits(SAMPLED)), disc, batch)
    logits = (torch.linspace(-1, 1, 12).view(2, 6) + 0.3).tolist()
    # the three used slots: (0, 2) replaced, (0, 4) original, (1, 2) replaced
    bce = [math.log1p(math.exp(-logits[0][2])), math.log1p(math.exp(logits[0][4])), math.log1p(math.exp(-logits[1][2]))]
    torch.testing.assert_close(out.losses["disc_loss"], torch.tensor(sum(bce) / 3))
    # its metrics judge the same three slots: 2 of 3 replaced, not 2 of the 10 real tokens
    judged = torch.zeros(2, 6)
    judged[0, 2] = judged[0, 4] = judged[1, 2] = 1
    assert torch.equal(out.disc.judged, judged)
    metrics = PretrainMetrics(vocab_size=VOCAB)(out)
    torch.testing.assert_close(metrics["replaced_frac"].compute(), torch.tensor(2 / 3))
    prior = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    torch.testing.assert_close(metrics["disc_gain"].compute(), torch.tensor(1 - sum(bce) / 3 / prior))


def test_electra_judges_every_real_token():
    batch = hand_batch()
    out = ReplacedTokenDetection()(FixedGenerator(peaked_logits(SAMPLED)), RecordingDiscriminator(), batch)
    assert torch.equal(out.disc.judged, batch["attention_mask"])


def test_mlm_predicts_the_masked_tokens_of_its_own_input():
    batch = hand_batch()
    torch.manual_seed(0)
    logits = torch.randn(2, 2, VOCAB)
    model = FixedMLM(logits)
    out = MaskedLanguageModeling()(None, model, batch)
    assert torch.equal(model.seen, batch["input_ids"])  # [MASK]s, no generator
    expected = (
        -(log_softmax_at(logits[0, 0], 12) + log_softmax_at(logits[0, 1], 14) + log_softmax_at(logits[1, 0], 22)) / 3
    )
    torch.testing.assert_close(out.loss, torch.tensor(expected))
    assert set(out.losses) == {"mlm_loss"} and out.gen is None and out.disc is None


def test_replace_mlm_predicts_originals_from_the_corrupted_input():
    batch = hand_batch()
    torch.manual_seed(0)
    logits = torch.randn(2, 2, VOCAB)
    model = FixedMLM(logits)
    out = ReplaceMLM()(FixedGenerator(peaked_logits(SAMPLED)), model, batch)
    assert torch.equal(model.seen, CORRUPTED)
    mlm = -(log_softmax_at(logits[0, 0], 12) + log_softmax_at(logits[0, 1], 14) + log_softmax_at(logits[1, 0], 22)) / 3
    torch.testing.assert_close(out.losses["mlm_loss"], torch.tensor(mlm))
    torch.testing.assert_close(out.loss, out.losses["gen_loss"] + out.losses["mlm_loss"])


class FixedCopyModel(torch.nn.Module):
    """All-Tokens MLM stand-in: fixed per-token vocabulary logits and copy logits."""

    def __init__(self, logits, copy_logits):
        super().__init__()
        self.logits, self.copy_logits = logits, copy_logits
        self.encoder = self._encode

    def _encode(self, input_ids, token_type_ids, attention_mask):
        self.seen = input_ids
        return torch.zeros(*input_ids.shape, 1)

    def head(self, hidden):
        return self.logits

    def copy_out(self, hidden):
        return self.copy_logits.unsqueeze(-1)


def test_all_tokens_mlm_loss_with_the_copy_mechanism():
    batch = hand_batch()
    torch.manual_seed(0)
    logits, copy_logits = torch.randn(2, 6, VOCAB), torch.randn(2, 6)
    model = FixedCopyModel(logits, copy_logits)
    out = AllTokensMLM()(FixedGenerator(peaked_logits(SAMPLED)), model, batch)
    assert torch.equal(model.seen, CORRUPTED)
    terms = []
    for b in range(2):
        for s in range(6):
            if not batch["attention_mask"][b, s]:
                continue
            d = 1 / (1 + math.exp(-copy_logits[b, s].item()))
            p_vocab = math.exp(log_softmax_at(logits[b, s], ORIGINAL[b, s].item()))
            copy = d if CORRUPTED[b, s] == ORIGINAL[b, s] else 0.0
            terms.append(-math.log(copy + (1 - d) * p_vocab))
    torch.testing.assert_close(out.losses["mlm_loss"], torch.tensor(sum(terms) / len(terms)))
    assert out.mlm.target.shape == (2, 6) and torch.equal(out.mlm.weights, batch["attention_mask"])


# ------------------------------------------------------------------ sharing modes
CONFIG = EncoderConfig(
    vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, embedding_size=16
)


def test_all_sharing_uses_one_encoder_with_two_heads():
    gen, disc = build_models(CONFIG, generator_fraction=1.0, embedding_sharing="all")
    assert gen.encoder is disc.encoder
    assert {id(p) for p in gen.encoder.parameters()} <= {id(p) for p in disc.parameters()}
    assert gen.head_dense is not disc.head_dense


def test_all_sharing_with_unequal_sizes_is_refused():
    with pytest.raises(
        ValueError, match="'all' shares every weight.*differ in hidden_size, num_heads, intermediate_size"
    ):
        build_models(CONFIG, generator_fraction=0.5, embedding_sharing="all")


def test_gdes_word_embedding_is_stop_grad_generator_plus_delta():
    gen, disc = build_models(CONFIG, generator_fraction=0.5, embedding_sharing="gdes")
    word = disc.encoder.embeddings.word
    assert isinstance(word, GDESWordEmbedding) and word.source is gen.encoder.embeddings.word
    assert torch.all(word.delta == 0)
    assert disc.encoder.embeddings.position is gen.encoder.embeddings.position
    with torch.no_grad():
        word.delta.add_(0.5)
    torch.testing.assert_close(word.weight, gen.encoder.embeddings.word.weight + 0.5)

    out = ReplacedTokenDetection()(gen, disc, hand_batch())
    out.losses["disc_loss"].backward()
    assert word.delta.grad is not None and word.delta.grad.abs().sum() > 0
    assert gen.encoder.embeddings.word.weight.grad is None  # the RTD loss never reaches E_G


def test_generator_sizes_explicit_and_refused_when_larger():
    gen = generator_config(CONFIG, 0.25, {"hidden_size": 16, "num_heads": 2, "num_layers": 1})
    assert (gen.hidden_size, gen.num_heads, gen.num_layers, gen.intermediate_size) == (16, 2, 1, 16)
    with pytest.raises(ValueError, match="generator hidden_size=64 is larger than the discriminator's 32"):
        generator_config(CONFIG, 0.25, {"hidden_size": 64})
