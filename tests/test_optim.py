"""AdamW groups (no decay on LayerNorm and biases, the generator's own lr), AdamW with and
without bias correction, and ELECTRA's learning-rate curve."""

import math

import lightning as L
import pytest
import torch

from electra_lit.adamw import AdamW, make_adamw
from electra_lit.errors import ConfigError
from electra_lit.lit import ElectraPretrainModule
from electra_lit.optim import OptimizerConfig, electra_lr_lambda, parameter_groups

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


def module(warmup_steps=10, model=MODEL, objective=None, **optimizer):
    return ElectraPretrainModule(
        model=model,
        vocab_size=100,
        objective={
            "_target_": "electra_lit.objectives.ReplacedTokenDetection",
            "disc_weight": 50.0,
            **(objective or {}),
        },
        optimizer={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-6, "weight_decay": 0.01, **optimizer},
        lr_schedule={"warmup_steps": warmup_steps},
    )


def optimizer_of(m, max_steps=100):
    m.trainer = L.Trainer(max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    config = m.configure_optimizers()
    return config["optimizer"], config["lr_scheduler"]["scheduler"]


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


# ------------------------------------------------------------------ AdamW with and without bias correction
def test_adamw_without_bias_correction_takes_the_released_step():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    g = torch.tensor([0.2, -0.1, 0.0])
    lr, wd, eps = 0.1, 0.01, 1e-6
    optimizer = AdamW([p], lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=wd, bias_correction=False)
    p.grad = g.clone()
    optimizer.step()
    # m = 0.1 g, v = 0.001 g^2; p <- p - lr * (m / (sqrt(v) + eps) + wd * p), with no 1 / (1 - beta^t)
    expected = [
        x - lr * (0.1 * dx / (math.sqrt(0.001 * dx * dx) + eps) + wd * x) for x, dx in zip([1.0, -2.0, 0.5], g.tolist())
    ]
    torch.testing.assert_close(p.detach(), torch.tensor(expected))
    # 0.02 / (sqrt(0.001) x 0.2 + 1e-6) = 3.1618: the corrected first step would be 1
    assert p[0].item() == pytest.approx(1.0 - 0.1 * (3.16178 + 0.01), abs=1e-5)

    p.grad = g.clone()
    optimizer.step()  # t = 2: m = 0.19 g, v = 0.001999 g^2
    first = expected
    expected = [
        x - lr * (0.19 * dx / (math.sqrt(0.001999 * dx * dx) + eps) + wd * x) for x, dx in zip(first, g.tolist())
    ]
    torch.testing.assert_close(p.detach(), torch.tensor(expected))


def test_adamw_with_bias_correction_equals_torch_adamw():
    torch.manual_seed(0)
    shapes = [(4, 3), (3,), (5,)]
    ours = [torch.nn.Parameter(torch.randn(shape)) for shape in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]

    def groups(params):  # two groups with their own lr and decay, as pretraining builds them
        return [{"params": params[:2], "weight_decay": 0.01}, {"params": params[2:], "weight_decay": 0.0, "lr": 3e-3}]

    a = AdamW(groups(ours), lr=1e-2, betas=(0.9, 0.999), eps=1e-6, bias_correction=True)
    b = torch.optim.AdamW(groups(theirs), lr=1e-2, betas=(0.9, 0.999), eps=1e-6)
    for step in range(5):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        if step == 2:
            ours[2].grad = theirs[2].grad = None  # a parameter without gradient keeps its own step count
        a.step()
        b.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert b.state[theirs[2]]["step"].item() == a.state[ours[2]]["step"].item() == 4
    b.load_state_dict(a.state_dict())  # the same state: a checkpoint of either loads into the other


def test_bias_correction_false_switches_the_pretraining_optimizer():
    optimizer, _ = optimizer_of(module(bias_correction=False))
    assert type(optimizer) is AdamW and optimizer.defaults["bias_correction"] is False
    optimizer, _ = optimizer_of(module())  # the default (and older checkpoints without the key): torch's AdamW
    assert type(optimizer) is torch.optim.AdamW
    assert type(make_adamw([torch.nn.Parameter(torch.zeros(1))], 1e-3, (0.9, 0.999), 1e-6)) is torch.optim.AdamW


# ------------------------------------------------------------------ the generator's own learning rate
def test_generator_lr_scale_gives_the_generators_own_parameters_their_lr():
    m = module(generator_lr_scale=0.5)
    optimizer, scheduler = optimizer_of(m, max_steps=100)
    peaks = [group["initial_lr"] for group in optimizer.param_groups]  # the scheduler's base lrs
    assert peaks == [1e-3, 1e-3, 5e-4, 5e-4]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0, 0.01, 0.0]
    params = [{id(p) for p in group["params"]} for group in optimizer.param_groups]
    shared = {id(p) for p in m.generator.encoder.embeddings.parameters()}
    generator_own = {id(p) for p in m.generator.parameters()} - shared
    assert params[2] | params[3] == generator_own  # the shared embeddings learn at lr
    assert shared <= params[0] | params[1]
    assert id(m.generator.encoder.layers[0].qkv.weight) in params[2] and id(m.generator.output_bias) in params[3]
    assert sum(map(len, params)) == len(list(m.parameters()))  # every parameter exactly once
    for _ in range(20):  # warmup 10, decay to 0 at 100: each group's own lr times the same factor
        optimizer.step()
        scheduler.step()
    factor = 1 - 20 / 100
    assert scheduler.get_last_lr() == pytest.approx([1e-3 * factor, 1e-3 * factor, 5e-4 * factor, 5e-4 * factor])


def test_generator_lr_scale_with_all_sharing_scales_the_generator_head_only():
    model = {**MODEL, "generator_fraction": 1.0, "embedding_sharing": "all"}
    m = module(model=model, generator_lr_scale=2.0)
    optimizer, _ = optimizer_of(m)
    own = {id(p) for group in optimizer.param_groups[2:] for p in group["params"]}
    head = {id(p) for name, p in m.generator.named_parameters() if not name.startswith("encoder.")}
    assert own == head


def test_generator_lr_scale_1_and_no_generator_keep_two_groups():
    assert len(optimizer_of(module(generator_lr_scale=1.0))[0].param_groups) == 2  # older checkpoints' layout
    uniform = module(generator_lr_scale=0.5, objective={"sampler": "uniform"})
    assert uniform.generator is None and len(optimizer_of(uniform)[0].param_groups) == 2
    with pytest.raises(ConfigError, match=r"^optimizer.generator_lr_scale=0 must be positive"):
        OptimizerConfig(generator_lr_scale=0)


@pytest.mark.slow
def test_released_switches_reach_a_training_run_from_the_command_line(compose_pretrain):
    from conftest import FAST
    from electra_lit.runs.pretrain import train

    keys = ["objective.sampler=uniform", "objective.disallow_correct=true", "optimizer.bias_correction=false"]
    cfg = compose_pretrain(*FAST, *keys, "trainer.max_steps=2", "trainer.val_check_interval=2")
    metrics = train(cfg)
    vocab = 8192  # the tiny recipe's WordPiece vocab
    assert float(metrics["train/gen_loss"]) == pytest.approx(math.log(vocab))  # uniform: a constant, as released
    assert "train/gen_acc" not in metrics  # no generator
    assert float(metrics["train/replaced_frac"]) > 0
