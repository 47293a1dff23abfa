"""ELECTRA's optimiser recipe: AdamW without weight decay on LayerNorm and biases, and the
paper's learning-rate curve lr(t) = peak * (1 - t / T) * min(1, t / warmup)."""

from __future__ import annotations

from torch import nn


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

    def factor(step: int) -> float:
        decay = max(0.0, 1.0 - step / total_steps)
        warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return decay * warmup

    return factor

