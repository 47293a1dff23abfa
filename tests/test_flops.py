"""The analytic FLOPs of a pretraining step (electra_lit.models.flops) against PyTorch's FLOP counter,
and the ``flops_per_batch`` a run hands to Lightning's ThroughputMonitor."""

import csv

import lightning as L
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from conftest import FAST
from electra_lit.models import EncoderConfig, build_models, pretraining_flops
from electra_lit.objectives import AllTokensMLM, MaskedLanguageModeling, ReplacedTokenDetection, ReplaceMLM
from electra_lit.runs.pretrain import train

BATCH, SEQ, PREDICTIONS, VOCAB = 2, 16, 4, 97
# embedding_size != hidden_size: the discriminator has an embedding projection, the generator (width 16) none
CONFIG = EncoderConfig(
    vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, embedding_size=16
)


def fixed_shape_batch(
    batch: int = BATCH, seq: int = SEQ, predictions: int = PREDICTIONS, vocab: int = VOCAB
) -> dict[str, torch.Tensor]:
    """A batch in the collator's layout: (batch, seq) tokens, ``predictions`` masked slots per sequence."""
    return {
        "input_ids": torch.randint(5, vocab, (batch, seq)),
        "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
        "masked_positions": torch.stack([torch.randperm(seq)[:predictions] for _ in range(batch)]),
        "masked_ids": torch.randint(5, vocab, (batch, predictions)),
        "masked_weights": torch.ones(batch, predictions),
    }


def models_for(objective, sharing: str):
    """(generator, main model) as the objective needs them, with ``sharing``; a generator of half
    the width (the same width when ``all`` shares the encoder)."""
    return build_models(
        CONFIG,
        main_head=objective.main_head,
        with_generator=objective.uses_generator,
        generator_fraction=1.0 if sharing == "all" else 0.5,
        embedding_sharing=sharing,
    )


@pytest.mark.parametrize(
    "objective, sharing",
    [
        (ReplacedTokenDetection(), "shared"),
        (ReplacedTokenDetection(), "all"),
        (MaskedLanguageModeling(), "shared"),
        (ReplaceMLM(), "gdes"),
        (AllTokensMLM(), "untied"),
    ],
    ids=["electra", "electra-all-shared", "mlm", "replace_mlm", "all_tokens_mlm"],
)
def test_analytic_flops_match_a_measured_forward_and_backward(objective, sharing):
    torch.manual_seed(0)
    generator, main = models_for(objective, sharing)
    counter = FlopCounterMode(display=False)
    # the math kernel is made of matmuls the counter sees; the CPU's fused attention kernel it does not count
    with sdpa_kernel(SDPBackend.MATH), counter:
        objective(generator, main, fixed_shape_batch()).loss.backward()
    expected = pretraining_flops(
        main.encoder.config,
        None if generator is None else generator.encoder.config,
        BATCH,
        SEQ,
        PREDICTIONS,
        main_head=objective.main_head,
    )
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.05)


def test_the_generator_and_the_head_positions_count():
    electra = pretraining_flops(CONFIG, CONFIG, BATCH, SEQ, PREDICTIONS)
    alone = pretraining_flops(CONFIG, None, BATCH, SEQ, PREDICTIONS)
    assert electra > alone  # the generator's passes
    mlm = pretraining_flops(CONFIG, None, BATCH, SEQ, PREDICTIONS, main_head="mlm")
    all_tokens = pretraining_flops(CONFIG, None, BATCH, SEQ, PREDICTIONS, main_head="mlm_copy")
    assert all_tokens > mlm  # the vocabulary head at every position, not only the masked ones
    with pytest.raises(ValueError, match="main_head"):
        pretraining_flops(CONFIG, None, BATCH, SEQ, PREDICTIONS, main_head="nsp")


class FlopsProbe(L.Callback):
    """Records what the module and the datamodule of a run say at the start of training."""

    seen: dict = {}

    def on_train_start(self, trainer, pl_module):
        datamodule = trainer.datamodule
        FlopsProbe.seen = dict(
            flops_per_batch=pl_module.flops_per_batch,
            expected=pretraining_flops(
                pl_module.main_model.encoder.config,
                pl_module.generator.encoder.config,
                datamodule.batch_size,
                datamodule.max_seq_length,
                datamodule.collator.max_predictions,
            ),
        )


@pytest.mark.slow
def test_a_run_logs_tokens_per_second_and_flops_per_batch(compose_pretrain, tmp_path):
    train(
        compose_pretrain(
            *FAST,
            "trainer.max_steps=3",
            "trainer.log_every_n_steps=1",
            "trainer.limit_val_batches=0",
            "callbacks.throughput.window_size=2",
            "callbacks.throughput.peak_tflops=0.5",
            "+callbacks.flops_probe._target_=test_flops.FlopsProbe",
        )
    )
    assert FlopsProbe.seen["flops_per_batch"] == FlopsProbe.seen["expected"] > 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    tokens_per_s = [float(r["train/device/items_per_sec"]) for r in rows if r.get("train/device/items_per_sec")]
    flops_per_s = [float(r["train/device/flops_per_sec"]) for r in rows if r.get("train/device/flops_per_sec")]
    assert tokens_per_s and min(tokens_per_s) > 0 and len(flops_per_s) == len(tokens_per_s)
    per_token = FlopsProbe.seen["flops_per_batch"] / (8 * 64)  # FAST: batches of 8 sequences of 64 tokens
    assert all(flops / tokens == pytest.approx(per_token) for flops, tokens in zip(flops_per_s, tokens_per_s))
    mfu = [float(r["perf/mfu"]) for r in rows if r.get("perf/mfu")]
    assert mfu == pytest.approx([flops / 0.5e12 for flops in flops_per_s])  # against the configured peak
    assert "train/device/mfu" not in rows[0]  # logged once, as perf/mfu


# ELECTRA-Small's discriminator (conf/model/small.yaml) and its 1/4-width generator, BERT's vocab
SMALL = EncoderConfig(
    vocab_size=30522, hidden_size=256, num_layers=12, num_heads=4, intermediate_size=1024, embedding_size=128
)


def test_analytic_flops_match_the_counter_at_electra_small():
    torch.manual_seed(0)
    batch, seq, predictions = 2, 128, 20  # 15% of 128 tokens, rounded as the collator does
    generator, main = build_models(SMALL, main_head="rtd", with_generator=True, generator_fraction=0.25)
    inputs = fixed_shape_batch(batch, seq, predictions, SMALL.vocab_size)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        ReplacedTokenDetection()(generator, main, inputs).loss.backward()
    expected = pretraining_flops(main.encoder.config, generator.encoder.config, batch, seq, predictions)
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.05)
    assert generator.encoder.config.hidden_size == 64  # the small generator: a quarter of the width
