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



LAYER_DECAY_RULES = ("released", "intended")


def layerwise_lr_groups(encoder, head: nn.Module, lr: float, decay: float, rule: str = "released",
                        weight_decay: float = 0.0) -> list[dict]:
    """Fine-tuning groups with layer-wise LR decay: lower layers learn slower.

    depth(embeddings) = 0, depth(layer i) = i + 1 and each group gets lr * decay^(top - depth).
    ``released`` (ELECTRA's code): the head is at top = L + 2, so the top layer gets lr * decay^2
    (an off-by-one) and the embeddings lr * decay^(L + 2). ``intended``: top = L + 1, so the top
    layer gets lr * decay and the embeddings lr * decay^(L + 1). The head always gets lr.
    """
    if rule not in LAYER_DECAY_RULES:
        raise ValueError(f"layer_decay_rule={rule!r} is not one of {', '.join(LAYER_DECAY_RULES)}")
    num_layers = len(encoder.layers)
    top = num_layers + 2 if rule == "released" else num_layers + 1
    embeddings = [*encoder.embeddings.parameters()]
    if encoder.embeddings_project is not None:
        embeddings += [*encoder.embeddings_project.parameters()]
    parts = [(embeddings, 0)] + [([*layer.parameters()], i + 1) for i, layer in enumerate(encoder.layers)]
    parts.append(([*head.parameters()], top))
    return [{"params": params, "lr": lr * decay ** (top - depth), "weight_decay": weight_decay} for params, depth in parts]
