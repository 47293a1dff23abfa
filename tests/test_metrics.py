"""Pretraining metrics against independent computations on a hand-made batch."""

import torch

from electra_lit.lit.metrics import PretrainMetrics
from electra_lit.objectives import PretrainOutput


def test_metrics_count_real_tokens_and_used_slots_only():
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    replaced = torch.tensor([[0, 1, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)
    disc_logits = torch.tensor([[-1.0, 2.0, 3.0, -2.0, -1.0], [-1.0, -1.0, -1.0, 5.0, 5.0]])
    # predicted replaced: (0,1) right, (0,2) wrong, (0,3) missed, (1,1) missed; padding ignored
    gen_logits = torch.zeros(2, 2, 6)
    gen_logits[0, 0, 3] = gen_logits[0, 1, 4] = gen_logits[1, 0, 5] = gen_logits[1, 1, 2] = 1.0
    out = PretrainOutput(
        loss=None, gen_loss=None, disc_loss=None,
        gen_logits=gen_logits,
        masked_ids=torch.tensor([[3, 1], [5, 2]]),
        masked_weights=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),  # slot (1, 1) unused: its hit must not count
        disc_logits=disc_logits, replaced=replaced, attention_mask=attention_mask,
    )
    values = PretrainMetrics(vocab_size=6)(out)
    torch.testing.assert_close(values["gen_acc"], torch.tensor(2 / 3))
    torch.testing.assert_close(values["disc_acc"], torch.tensor(5 / 8))
    torch.testing.assert_close(values["replaced_frac"], torch.tensor(3 / 8))
