"""The masking collator against the spec: counts, never-masked tokens, 85/15, static shapes."""

import numpy as np
import pytest
import torch

from electra_lit.data import MaskingCollator, SpecialTokenIds
from electra_lit.data.pretraining.masking import default_max_predictions

SPECIAL = SpecialTokenIds(pad=0, unk=1, cls=2, sep=3, mask=4)


def example(key, length, seq_len=128, segment_b_at=None):
    rng = np.random.default_rng(key)
    ids = np.zeros(seq_len, dtype=np.int32)
    ids[:length] = rng.integers(10, 500, length)
    ids[0] = SPECIAL.cls
    ids[length - 1] = SPECIAL.sep
    if segment_b_at:
        ids[segment_b_at] = SPECIAL.sep
    types = np.zeros(seq_len, dtype=np.int8)
    mask = (np.arange(seq_len) < length).astype(np.int8)
    return {"key": key, "input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def collator(**kw):
    return MaskingCollator(special_token_ids=SPECIAL, max_seq_length=128, seed=7, **kw)


def test_max_predictions_is_the_papers():
    assert default_max_predictions(0.15, 128) == 19
    # int((0.15 + 0.005) * 512) = 79, as the released code computes it (the spec's prose says 77,
    # which is round(0.15 * 512); the formula is what ELECTRA ran)
    assert default_max_predictions(0.15, 512) == 79
    assert collator().max_predictions == 19


def test_shapes_are_static_and_counts_follow_the_rule():
    lengths = [128, 100, 40, 7, 3]
    batch = collator()([example(i, n, segment_b_at=n // 2 if n > 6 else None) for i, n in enumerate(lengths)])
    for name in ("masked_positions", "masked_ids", "masked_weights"):
        assert batch[name].shape == (5, 19)
    assert batch["input_ids"].shape == (5, 128)
    counts = batch["masked_weights"].sum(1).tolist()
    # n = max(1, round(0.15 * real tokens)) capped at 19; the 3-token sequence has 1 candidate
    assert counts == [19, 15, 6, 1, 1]


def test_a_batch_shorter_than_the_cap_keeps_the_static_shapes():
    """One unpadded sentence (as a notebook or a probe passes it) has fewer tokens than the 19 slots
    sized for 128-token sequences: the slots are still 19, the unused ones at position 0."""
    batch = collator()([example(0, 12, seq_len=12)])
    assert batch["input_ids"].shape == (1, 12)
    assert batch["masked_positions"].shape == (1, 19)
    used = batch["masked_weights"][0] > 0
    assert int(used.sum()) == round(0.15 * 12)  # 2
    assert set(batch["masked_positions"][0][used].tolist()) <= set(range(1, 11))  # never [CLS] or [SEP]
    assert torch.all(batch["masked_positions"][0][~used] == 0)


def test_never_masks_special_tokens_or_padding_and_never_twice():
    batch = collator()([example(i, n, segment_b_at=20) for i, n in enumerate([128, 90, 30, 64])])
    original = torch.stack(
        [torch.as_tensor(example(i, n, segment_b_at=20)["input_ids"]) for i, n in enumerate([128, 90, 30, 64])]
    )
    for row in range(4):
        used = batch["masked_weights"][row] > 0
        positions = batch["masked_positions"][row][used]
        assert len(set(positions.tolist())) == len(positions)
        assert torch.all(batch["attention_mask"][row][positions] == 1)
        assert not torch.isin(batch["masked_ids"][row][used], torch.tensor(SPECIAL.never_masked)).any()
        # unused slots point at position 0 and carry its token
        assert torch.all(batch["masked_positions"][row][~used] == 0)
        assert torch.all(batch["masked_ids"][row][~used] == SPECIAL.cls)
    # masked_ids are the original tokens; unmasked positions are untouched
    torch.testing.assert_close(batch["masked_ids"], original.long().gather(1, batch["masked_positions"]))
    changed = batch["input_ids"] != original
    assert torch.all(batch["input_ids"][changed] == SPECIAL.mask)


def test_85_percent_mask_15_percent_kept_over_many_draws():
    c = collator()
    masked = kept = 0
    for start in range(0, 400, 20):
        examples = [example(start + i, 128) for i in range(20)]
        batch = c(examples)
        used = batch["masked_weights"] > 0
        at_positions = batch["input_ids"].gather(1, batch["masked_positions"])[used]
        masked += int((at_positions == SPECIAL.mask).sum())
        kept += int((at_positions == batch["masked_ids"][used]).sum())
    total = masked + kept
    assert total == 400 * 19
    assert abs(masked / total - 0.85) < 0.015  # 7600 draws: 3.5 standard deviations


def test_mask_rate_is_configurable():
    batch = collator(mask_prob=0.25)([example(0, 128)])
    assert batch["masked_weights"].shape == (1, 32)
    assert batch["masked_weights"].sum() == 32


def test_masks_are_a_function_of_the_keys():
    c = collator()
    examples = [example(i, 100) for i in range(4)]
    first, again = c(examples), c(examples)
    for name in first:
        torch.testing.assert_close(first[name], again[name])
    relabelled = [{**e, "key": e["key"] + 100} for e in examples]
    assert not torch.equal(c(relabelled)["masked_positions"], first["masked_positions"])


def test_missing_key_is_explained():
    example_without_key = {k: v for k, v in example(0, 10).items() if k != "key"}
    with pytest.raises(KeyError, match="unique integer 'key'"):
        collator()([example_without_key])


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_mask_prob_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match=f"^masking.mask_prob={p} is outside \\(0, 1\\)"):
        collator(mask_prob=p)
