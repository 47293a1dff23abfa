"""Pretraining metrics against independent computations on a hand-made batch."""

import math

import torch

from electra_lit.lit.modules.metrics import PretrainMetrics
from electra_lit.objectives import Detections, PretrainOutput, TokenPredictions


def test_metrics_count_real_tokens_and_used_slots_only():
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    replaced = torch.tensor([[0, 1, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    disc_logits = torch.tensor([[-1.0, 2.0, 3.0, -2.0, -1.0], [-1.0, -1.0, -1.0, 5.0, 5.0]])
    # predicted replaced: (0,1) right, (0,2) wrong, (0,3) missed, (1,1) missed; padding ignored
    out = PretrainOutput(
        loss=torch.tensor(0.0),
        gen=TokenPredictions(
            predicted=torch.tensor([[3, 4], [5, 2]]),
            target=torch.tensor([[3, 1], [5, 2]]),
            weights=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),  # slot (1, 1) unused: its hit must not count
        ),
        disc=Detections(disc_logits, replaced, attention_mask),
    )
    metrics = PretrainMetrics(vocab_size=6)
    updated = metrics(out)
    assert sorted(updated) == [  # no mlm_acc: no MLM part
        "disc_acc",
        "disc_auc",
        "disc_f1",
        "disc_gain",
        "disc_precision",
        "disc_recall",
        "gen_acc",
        "replaced_frac",
    ]
    torch.testing.assert_close(updated["gen_acc"].compute(), torch.tensor(2 / 3))
    torch.testing.assert_close(updated["disc_acc"].compute(), torch.tensor(5 / 8))
    torch.testing.assert_close(updated["replaced_frac"].compute(), torch.tensor(3 / 8))
    # "replaced" is the positive class: 1 of the 2 flagged is replaced, 1 of the 3 replaced is flagged
    torch.testing.assert_close(updated["disc_precision"].compute(), torch.tensor(1 / 2))
    torch.testing.assert_close(updated["disc_recall"].compute(), torch.tensor(1 / 3))
    torch.testing.assert_close(updated["disc_f1"].compute(), torch.tensor(0.4))
    # AUC by counting pairs: of the 3 x 5 (replaced, original) pairs, the replaced token scores
    # higher in 4 (logit 2 over the four -1s) and ties in 4 (logit -1 against the four -1s)
    torch.testing.assert_close(updated["disc_auc"].compute(), torch.tensor((4 + 0.5 * 4) / 15))
    real = attention_mask.bool()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(disc_logits[real], replaced[real].float())
    prior = 3 / 8
    constant_loss = -(prior * math.log(prior) + (1 - prior) * math.log(1 - prior))
    torch.testing.assert_close(updated["disc_gain"].compute(), 1 - bce / constant_loss)


def test_gain_is_zero_for_the_constant_predictor_and_pooled_over_batches():
    """A discriminator answering the prior everywhere removes nothing; and two batches' gain is the
    gain of their tokens together, not the mean of two per-batch gains."""
    metrics = PretrainMetrics(vocab_size=6)
    replaced = torch.tensor([[1, 0, 0, 0]], dtype=torch.bool)
    constant = torch.full((1, 4), math.log(0.25 / 0.75))  # sigmoid = 0.25, the share replaced
    out = PretrainOutput(loss=torch.tensor(0.0), disc=Detections(constant, replaced, torch.ones(1, 4)))
    torch.testing.assert_close(metrics(out)["disc_gain"].compute(), torch.tensor(0.0), atol=1e-6, rtol=0)

    metrics = PretrainMetrics(vocab_size=6)
    sure = torch.tensor([[4.0, -4.0, -4.0, -4.0]])  # right everywhere, confidently
    halves = [
        Detections(sure[:, :2], replaced[:, :2], torch.ones(1, 2)),
        Detections(sure[:, 2:], replaced[:, 2:], torch.ones(1, 2)),
    ]
    for half in halves:
        metrics(PretrainOutput(loss=torch.tensor(0.0), disc=half))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(sure, replaced.float())
    prior_loss = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(metrics.disc_gain.compute(), 1 - bce / prior_loss)


def test_mlm_accuracy_for_mlm_objectives():
    out = PretrainOutput(
        loss=torch.tensor(0.0),
        mlm=TokenPredictions(
            torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
        ),
    )
    updated = PretrainMetrics(vocab_size=6)(out)
    assert sorted(updated) == ["mlm_acc"]
    torch.testing.assert_close(updated["mlm_acc"].compute(), torch.tensor(2 / 3))
