"""AdamW with a switch for the bias correction: ELECTRA's released optimizer
(model/optimization.py, ``AdamWeightDecayOptimizer``) has none.

One step, per parameter p with gradient g, at its step t (from 1):

    m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
    p = p * (1 - lr * weight_decay) - lr * m' / (sqrt(v') + eps)

with the bias correction (torch.optim.AdamW's rule) m' = m / (1 - beta1^t), v' = v / (1 - beta2^t);
without it (the released code) m' = m, v' = v. Without the correction the early steps are larger
for a steady gradient: (1 - beta1^t) / sqrt(1 - beta2^t) times, 3.2 at t = 1, 6.6 at t = 12, 1.3 at
t = 1000, 1.0 from about t = 5000; ELECTRA's 10,000 warmup steps keep the learning rate small meanwhile.
The state (``step``, ``exp_avg``, ``exp_avg_sq``) is torch.optim.AdamW's, so a checkpoint of either
loads into the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


class AdamW(torch.optim.Optimizer):
    """AdamW whose ``bias_correction`` can be turned off; with it on, the steps are torch.optim.AdamW's."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        bias_correction: bool = True,
    ):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)
        return loss

    def _update(self, group: dict, params: list[torch.Tensor]) -> None:
        """One step of the parameters of ``group`` that have a gradient, as foreach ops (a few
        kernels per group rather than per tensor)."""
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        states = [self._state(p) for p in params]
        steps = [float(state["step"].add_(1)) for state in states]  # each parameter's own t
        grads = [p.grad for p in params]
        exp_avgs = [state["exp_avg"] for state in states]
        exp_avg_sqs = [state["exp_avg_sq"] for state in states]

        torch._foreach_mul_(params, 1 - lr * group["weight_decay"])  # decoupled decay, on the old p
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # m = beta1 m + (1 - beta1) g
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)  # v = beta2 v + (1 - beta2) g^2
        denom = torch._foreach_sqrt(exp_avg_sqs)
        if group["bias_correction"]:
            torch._foreach_div_(denom, [math.sqrt(1 - beta2**t) for t in steps])
            step_sizes = [-lr / (1 - beta1**t) for t in steps]
        else:
            step_sizes = [-lr] * len(steps)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)

    def _state(self, param: torch.Tensor) -> dict:
        state = self.state[param]
        if not state:  # torch.optim.AdamW's keys and kinds: a float32 CPU step, moments like the parameter
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state


def make_adamw(
    param_groups: list[dict],
    lr: float,
    betas: Iterable[float],
    eps: float,
    bias_correction: bool = True,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Pretraining's optimizer: torch.optim.AdamW (``fused`` on CUDA) with the bias correction,
    :class:`AdamW` without it (the released code's)."""
    if bias_correction:
        return torch.optim.AdamW(param_groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused)
    return AdamW(param_groups, lr=lr, betas=tuple(betas), eps=eps, bias_correction=False)
