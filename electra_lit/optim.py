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
    # AdamW's bias correction of the moments (torch's AdamW); false: none, as ELECTRA's released optimizer
    bias_correction: bool = True
    # the generator's own parameters (not those it shares with the discriminator) learn at lr x this
    generator_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optimizer.lr={self.lr} must be positive")
        if not self.generator_lr_scale > 0:
            raise ConfigError(
                f"optimizer.generator_lr_scale={self.generator_lr_scale} must be positive (1.0: the generator learns at lr)"
            )


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


def parameter_groups(
    model: nn.Module, weight_decay: float, generator: nn.Module | None = None, generator_lr: float | None = None
) -> list[dict]:
    """AdamW groups: weight matrices and embeddings decay; LayerNorm weights and biases do not.

    With ``generator`` (a submodule of ``model``) and ``generator_lr``, the parameters only the
    generator has (not the embeddings it shares with the discriminator) get two groups of their
    own at ``generator_lr``, after the two others (the first group's lr is the one logged).
    Without them, two groups: the layout of checkpoints written before the generator's lr existed.
    """
    no_decay_ids = {
        id(p)
        for module in model.modules()
        if isinstance(module, nn.LayerNorm)
        for p in module.parameters(recurse=False)
    }
    generator_ids = set() if generator is None or generator_lr is None else _own_parameter_ids(generator, model)
    groups = {(own, decays): [] for own in (False, True) for decays in (True, False)}
    for name, param in model.named_parameters():  # shared parameters appear once
        if not param.requires_grad:
            continue
        decays = not (id(param) in no_decay_ids or name.endswith("bias"))
        groups[id(param) in generator_ids, decays].append(param)
    out = [
        {"params": groups[False, True], "weight_decay": weight_decay},
        {"params": groups[False, False], "weight_decay": 0.0},
    ]
    if generator_ids:
        out += [
            {"params": groups[True, True], "weight_decay": weight_decay, "lr": generator_lr},
            {"params": groups[True, False], "weight_decay": 0.0, "lr": generator_lr},
        ]
    return out


def _own_parameter_ids(generator: nn.Module, model: nn.Module) -> set[int]:
    """Ids of the generator's parameters that no other part of ``model`` holds (shared embeddings,
    or the whole encoder with embedding_sharing=all, are left out)."""
    elsewhere: set[int] = set()
    seen: set[int] = set()

    def walk(module: nn.Module) -> None:  # every module reachable without passing through the generator
        if module is generator or id(module) in seen:
            return
        seen.add(id(module))
        elsewhere.update(id(p) for p in module.parameters(recurse=False))
        for child in module.children():
            walk(child)

    walk(model)
    return {id(p) for p in generator.parameters()} - elsewhere


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


# released: lr * (1 - t/T) * min(1, t/warmup), ELECTRA's code (and pretraining's curve);
# sequential: warmup to lr, then linear decay from lr to 0 over the remaining steps.
LR_CURVES = ("released", "sequential")


def check_lr_curve(curve: str) -> None:
    if curve not in LR_CURVES:
        raise ConfigError(f"optimizer.lr_curve={curve!r} is not one of {', '.join(LR_CURVES)}")


@dataclass
class FinetuneOptimizerConfig:
    """Fine-tuning's ``optimizer``: AdamW with layer-wise LR decay and ELECTRA's released LR curve."""

    # null = by the encoder's width: the paper's 3e-4 (Small), 1e-4 (Base), 5e-5 (Large); 2e-3 narrower than Small
    lr: float | None = None
    layerwise_lr_decay: float | None = None  # null = 0.8 (0.9 for Large)
    layer_decay_rule: str = "released"  # released: ELECTRA's code (top layer lr * decay^2); intended: lr * decay
    warmup_fraction: float = 0.1  # share of all steps spent warming up
    # released: lr * (1 - t/T) * min(1, t/warmup), as ELECTRA's code; sequential: warmup, then linear decay to 0
    lr_curve: str = "released"
    # decoupled (AdamW), not on LayerNorm weights or biases; 0.01 as ELECTRA's released code (the paper says 0)
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's decay rates of the gradient's moments
    eps: float = 1e-6  # AdamW's epsilon

    def __post_init__(self) -> None:
        check_layer_decay_rule(self.layer_decay_rule)
        check_lr_curve(self.lr_curve)
        if self.weight_decay < 0:
            raise ConfigError(f"optimizer.weight_decay={self.weight_decay} must be non-negative (0 = none)")


def layerwise_lr_groups(
    encoder, head: nn.Module, lr: float, decay: float, rule: str = "released", weight_decay: float = 0.0
) -> list[dict]:
    """Fine-tuning groups with layer-wise LR decay: lower layers learn slower.

    depth(embeddings) = 0, depth(layer i) = i + 1 and each group gets lr * decay^(top - depth).
    ``released`` (ELECTRA's code): the head is at top = L + 2, so the top layer gets lr * decay^2
    (an off-by-one) and the embeddings lr * decay^(L + 2). ``intended``: top = L + 1, so the top
    layer gets lr * decay and the embeddings lr * decay^(L + 1). The head always gets lr.
    Each depth is two groups, as in pretraining (:func:`parameter_groups`): its weight matrices
    and embeddings decay by ``weight_decay``, its LayerNorm weights and biases do not.
    """
    check_layer_decay_rule(rule)
    num_layers = len(encoder.layers)
    top = num_layers + 2 if rule == "released" else num_layers + 1
    embeddings = [*encoder.embeddings.parameters()]
    if encoder.embeddings_project is not None:
        embeddings += [*encoder.embeddings_project.parameters()]
    parts = [(embeddings, 0)] + [([*layer.parameters()], i + 1) for i, layer in enumerate(encoder.layers)]
    parts.append(([*head.parameters()], top))
    decayed = {id(p) for p in parameter_groups(nn.ModuleList([encoder, head]), weight_decay)[0]["params"]}
    groups = []
    for params, depth in parts:
        for rate, members in (
            (weight_decay, [p for p in params if id(p) in decayed]),
            (0.0, [p for p in params if id(p) not in decayed]),
        ):
            if members:
                groups.append({"params": members, "lr": lr * decay ** (top - depth), "weight_decay": rate})
    return groups
