"""ELECTRA's optimiser recipe: AdamW without weight decay on LayerNorm and biases, and the
paper's learning-rate curve lr(t) = peak * (1 - t / T) * min(1, t / warmup); for fine-tuning,
layer-wise LR decay. The configs of both (``optimizer``, ``lr_schedule``) and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from electra_lit.errors import ConfigError


@dataclass
class OptimizerConfig:
    """Pretraining's ``optimizer``: AdamW; weight decay skips LayerNorm weights and biases."""

    lr: float = 5e-4  # peak learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's decay rates of the gradient's moments
    eps: float = 1e-6  # AdamW's epsilon
    weight_decay: float = 0.01  # decoupled (AdamW) weight decay

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optimizer.lr={self.lr} must be positive")


@dataclass
class LRScheduleConfig:
    """Pretraining's ``lr_schedule``: lr(t) = lr * (1 - t / trainer.max_steps) * min(1, t / warmup_steps)."""

    warmup_steps: int = 10000  # steps of linear warmup from 0 to lr

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"lr_schedule.warmup_steps={self.warmup_steps} must be a non-negative integer")


def check_total_steps(total_steps: object) -> None:
    """The schedule ends at ``trainer.max_steps``, so it must be set."""
    if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
        raise ConfigError(
            f"trainer.max_steps={total_steps} must be a positive integer: the learning rate decays to 0 at that step"
        )


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight matrices and embeddings decay; LayerNorm weights and biases do not."""
    no_decay_ids = {
        id(p)
        for module in model.modules()
        if isinstance(module, nn.LayerNorm)
        for p in module.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # shared parameters appear once
        if not param.requires_grad:
            continue
        if id(param) in no_decay_ids or name.endswith("bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def electra_lr_lambda(total_steps: int, warmup_steps: int):
    """Multiplier of the peak LR at step t: linear decay to 0 at ``total_steps`` times a linear warmup."""
    check_total_steps(total_steps)

    def factor(step: int) -> float:
        decay = max(0.0, 1.0 - step / total_steps)
        warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return decay * warmup

    return factor


LAYER_DECAY_RULES = ("released", "intended")


def check_layer_decay_rule(rule: str) -> None:
    if rule not in LAYER_DECAY_RULES:
        raise ConfigError(f"optimizer.layer_decay_rule={rule!r} is not one of {', '.join(LAYER_DECAY_RULES)}")


@dataclass
class FinetuneOptimizerConfig:
    """Fine-tuning's ``optimizer``: AdamW with layer-wise LR decay; warmup, then linear decay to 0."""

    # null = the paper's for the encoder's width: 3e-4 (Small and smaller), 1e-4 (Base), 5e-5 (Large)
    lr: float | None = None
    layerwise_lr_decay: float | None = None  # null = 0.8 (0.9 for Large)
    layer_decay_rule: str = "released"  # released: ELECTRA's code (top layer lr * decay^2); intended: lr * decay
    warmup_fraction: float = 0.1  # share of all steps spent warming up
    weight_decay: float = 0.0  # decoupled (AdamW) weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's decay rates of the gradient's moments
    eps: float = 1e-6  # AdamW's epsilon

    def __post_init__(self) -> None:
        check_layer_decay_rule(self.layer_decay_rule)


def layerwise_lr_groups(
    encoder, head: nn.Module, lr: float, decay: float, rule: str = "released", weight_decay: float = 0.0
) -> list[dict]:
    """Fine-tuning groups with layer-wise LR decay: lower layers learn slower.

    depth(embeddings) = 0, depth(layer i) = i + 1 and each group gets lr * decay^(top - depth).
    ``released`` (ELECTRA's code): the head is at top = L + 2, so the top layer gets lr * decay^2
    (an off-by-one) and the embeddings lr * decay^(L + 2). ``intended``: top = L + 1, so the top
    layer gets lr * decay and the embeddings lr * decay^(L + 1). The head always gets lr.
    """
    check_layer_decay_rule(rule)
    num_layers = len(encoder.layers)
    top = num_layers + 2 if rule == "released" else num_layers + 1
    embeddings = [*encoder.embeddings.parameters()]
    if encoder.embeddings_project is not None:
        embeddings += [*encoder.embeddings_project.parameters()]
    parts = [(embeddings, 0)] + [([*layer.parameters()], i + 1) for i, layer in enumerate(encoder.layers)]
    parts.append(([*head.parameters()], top))
    return [
        {"params": params, "lr": lr * decay ** (top - depth), "weight_decay": weight_decay} for params, depth in parts
    ]
