"""Pretraining metrics against independent computations on a hand-made batch."""

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
    assert sorted(updated) == ["disc_acc", "gen_acc", "replaced_frac"]  # no mlm_acc: no MLM part
    torch.testing.assert_close(updated["gen_acc"].compute(), torch.tensor(2 / 3))
    torch.testing.assert_close(updated["disc_acc"].compute(), torch.tensor(5 / 8))
    torch.testing.assert_close(updated["replaced_frac"].compute(), torch.tensor(3 / 8))


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
