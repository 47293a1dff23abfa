"""``torch.compile`` of the pretraining step: generator, sampling, discriminator and losses as
one graph (the ``compile`` group: ``none``, ``inductor``, ``cudagraphs``).

The step compiles whole (``fullgraph=True``): batches have static shapes (the collator's fixed
batch, length and prediction count), sampling is Gumbel-max on the device and the losses are
weighted means with no host sync, so nothing in it needs Python to look at a tensor's value. A
change that adds a graph break therefore fails at the first step instead of silently running
slower (``tests/test_compile.py`` counts the breaks of every objective and sharing mode).

What stays outside the graph: the optimizer step, gradient clipping and accumulation, metrics
and logging (Lightning's loop). The compiled callable wraps a bound method, not the modules,
so parameter names and checkpoints are the same compiled or not: a run can resume with or
without compilation.

CUDA graphs (``mode=reduce-overhead`` or ``max-autotune``, i.e. ``compile=cudagraphs``) replay
the recorded kernels without launching each one from Python: the launch overhead of a small
model disappears. They are safe here because, and only while:

- the device is a CUDA GPU (refused elsewhere, in one line);
- every training batch has the same shape (true of pretraining batches: the loaders drop the
  last partial batch); each other shape (validation's batch) records one more graph, in memory;
- the step has no host sync or CPU tensor inside (none: see above);
- each replay overwrites the previous one's outputs: the module marks each step's start
  (``torch.compiler.cudagraph_mark_step_begin``) and clones what it logs;
- parameters are whole on each device (not sharded): refused with FSDP and DeepSpeed, whose
  hooks gather and free parameters around the forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

import torch

from electra_lit.errors import ConfigError

MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
SHARDING_STRATEGIES = ("fsdp", "deepspeed")

T = TypeVar("T")


@dataclass
class CompileConfig:
    """How the pretraining step is compiled (the ``compile`` group sets these)."""

    enabled: bool = False  # torch.compile the step: generator, sampling, discriminator and losses as one graph
    # torch.compile's mode: default | max-autotune-no-cudagraphs | reduce-overhead, max-autotune (both CUDA graphs, GPU only)
    mode: str = "default"
    fullgraph: bool = True  # any graph break is an error (the step is written to have none)
    backend: str = "inductor"  # torch.compile's backend; aot_eager traces without generating kernels (tests)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"compile.mode={self.mode} is not one of: {', '.join(MODES)}")

    @property
    def cuda_graphs(self) -> bool:
        """Whether the compiled step replays CUDA graphs."""
        return self.enabled and self.mode in CUDA_GRAPH_MODES

    def check_runs_on(self, device: torch.device, strategy: str = "") -> None:
        """Refuse, in one line, CUDA graphs on a device or strategy where they are not safe."""
        if not self.cuda_graphs:
            return
        if device.type != "cuda":
            raise ConfigError(
                f"compile.mode={self.mode} records CUDA graphs, which need a CUDA GPU, and this run is on "
                f"{device.type}; use compile=inductor (no CUDA graphs) or compile=none"
            )
        sharded = next((name for name in SHARDING_STRATEGIES if name in strategy.lower()), None)
        if sharded:
            raise ConfigError(
                f"compile.mode={self.mode} (CUDA graphs) cannot capture a {sharded} step, whose hooks gather "
                "and free parameters; use compile=inductor with this strategy"
            )

    def build(self, step: Callable[..., T]) -> Callable[..., T]:
        """``step`` compiled as configured, or ``step`` itself when compilation is off."""
        if not self.enabled:
            return step
        mode = None if self.mode == "default" else self.mode
        return torch.compile(step, fullgraph=self.fullgraph, dynamic=False, backend=self.backend, mode=mode)


def mark_step_begin() -> None:
    """Tell the CUDA-graph runtime a new training step starts, so that it may reuse the memory of
    the previous step's outputs (which must no longer be read: see :func:`clone_tensors`)."""
    torch.compiler.cudagraph_mark_step_begin()


def clone_tensors(value: Any) -> Any:
    """A copy of ``value`` (a tensor, or a dataclass holding tensors, dicts and dataclasses) with
    every tensor cloned: a CUDA graph's outputs are overwritten by its next replay, the clones
    are not. Clones keep their autograd history, so a cloned loss still back-propagates."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: clone_tensors(item) for key, item in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: clone_tensors(getattr(value, f.name)) for f in fields(value) if f.init})
    return value
