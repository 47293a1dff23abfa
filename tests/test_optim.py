"""AdamW groups (no decay on LayerNorm and biases) and ELECTRA's learning-rate curve."""

import lightning as L
import pytest
import torch

from electra_lit.lit import ElectraPretrainModule
from electra_lit.optim import electra_lr_lambda, parameter_groups

MODEL = {
    "discriminator": {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "embedding_size": 16,
    },
    "generator_fraction": 0.25,
    "embedding_sharing": "shared",
}


def module(warmup_steps=10):
    return ElectraPretrainModule(
        model=MODEL,
        vocab_size=100,
        objective={"_target_": "electra_lit.objectives.ReplacedTokenDetection", "disc_weight": 50.0},
        optimizer={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-6, "weight_decay": 0.01},
        lr_schedule={"warmup_steps": warmup_steps},
    )


def test_no_weight_decay_on_layernorm_and_biases():
    m = module()
    decay, no_decay = parameter_groups(m, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in m.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert all(n.endswith("bias") or ".norm." in n or "_norm." in n for n in not_decayed)
    assert all(n.endswith("weight") and "norm" not in n for n in decayed)
    in_group = lambda p, group: any(p is q for q in group["params"])  # noqa: E731
    d = m.main_model
    for p in (
        d.encoder.embeddings.norm.weight,
        d.encoder.layers[0].attention_norm.weight,
        d.encoder.layers[0].qkv.bias,
        m.generator.output_bias,
        m.generator.head_norm.weight,
    ):
        assert in_group(p, no_decay)
    for p in (d.encoder.embeddings.word.weight, d.encoder.layers[0].qkv.weight, d.head_dense.weight):
        assert in_group(p, decay)
    # every parameter exactly once, shared embeddings included
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.0), (50, 0.5 * (1 - 50 / 1000)), (100, 1 - 100 / 1000), (500, 0.5), (999, 0.001), (1000, 0.0)],
)
def test_lr_is_peak_times_linear_decay_times_warmup(step, expected):
    assert electra_lr_lambda(total_steps=1000, warmup_steps=100)(step) == pytest.approx(expected)


def test_configure_optimizers_uses_the_trainers_max_steps():
    m = module(warmup_steps=10)
    m.trainer = L.Trainer(max_steps=100, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    config = m.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-6
    assert config["lr_scheduler"]["interval"] == "step"
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(1e-3 * (1 - 20 / 100))
