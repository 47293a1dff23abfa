"""The batch a pretraining run takes per device, from the global batch the recipe asks for.

The paper gives its batch per optimizer step over the whole job (ELECTRA-Large: 2048 sequences),
while a device holds a micro-batch and Lightning accumulates gradients over several. So a recipe
sets ``global_batch_size`` and the run derives the rest: :func:`plan_batch` is the arithmetic, a
pure function; :func:`configured_world_size` counts the processes a trainer config asks for, so
that the plan can be made before anything is built (the Trainer, once built, has the last word).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from omegaconf import DictConfig

from electra_lit.errors import ConfigError


class BatchPlan(NamedTuple):
    """Sequences per device per forward pass, and forward passes per optimizer step."""

    micro_batch_size: int
    accumulate_grad_batches: int


def _positive(key: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{key}={value} must be a positive integer (or null)")


def _largest_divisor_up_to(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (1 at least)."""
    return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


def _nearest_multiple(value: int, step: int) -> int:
    return max(1, round(value / step)) * step


def plan_batch(
    global_batch_size: int | None, micro_batch_size: int | None, world_size: int, accumulate: int = 1
) -> BatchPlan:
    """Split ``global_batch_size`` sequences per optimizer step over ``world_size`` devices.

    - micro-batch null: micro = global / (world_size x accumulate);
    - micro-batch set: accumulate = global / (world_size x micro) (an ``accumulate`` other than 1
      must then agree);
    - global null: nothing derived, the micro-batch (which must be set) and ``accumulate`` as given.

    Raises a one-line :class:`ConfigError` naming the keys and a working value when the numbers
    do not divide.
    """
    _positive("global_batch_size", global_batch_size)  # data.batch_size: DataConfig checks it
    _positive("trainer.accumulate_grad_batches", accumulate)
    devices = f"{world_size} device(s)"
    if global_batch_size is None:
        if micro_batch_size is None:
            raise ConfigError(
                "data.batch_size=null needs global_batch_size to derive it from; set "
                "global_batch_size=N (sequences per optimizer step) or data.batch_size=N (per device)"
            )
        return BatchPlan(micro_batch_size, accumulate)
    if micro_batch_size is None:
        passes = world_size * accumulate
        if global_batch_size % passes:
            raise ConfigError(
                f"global_batch_size={global_batch_size} does not split over {devices} x "
                f"trainer.accumulate_grad_batches={accumulate}; use global_batch_size="
                f"{_nearest_multiple(global_batch_size, passes)} or another device or accumulation count"
            )
        return BatchPlan(global_batch_size // passes, accumulate)
    per_pass = world_size * micro_batch_size
    if global_batch_size % per_pass:
        if global_batch_size % world_size == 0:
            fix = f"data.batch_size={_largest_divisor_up_to(global_batch_size // world_size, micro_batch_size)}"
        else:
            fix = f"global_batch_size={_nearest_multiple(global_batch_size, per_pass)}"
        raise ConfigError(
            f"global_batch_size={global_batch_size} is not a multiple of data.batch_size={micro_batch_size} x "
            f"{devices} = {per_pass}; use {fix}, or data.batch_size=null to derive it"
        )
    derived = global_batch_size // per_pass
    if accumulate not in (1, derived):
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate} but global_batch_size={global_batch_size} with "
            f"data.batch_size={micro_batch_size} on {devices} needs {derived}; leave "
            "trainer.accumulate_grad_batches=1, it is derived from the other two"
        )
    return BatchPlan(micro_batch_size, derived)


def plan_from_config(cfg: DictConfig, world_size: int) -> BatchPlan:
    """:func:`plan_batch` with a pretraining config's ``global_batch_size``, ``data.batch_size``
    and ``trainer.accumulate_grad_batches``."""
    return plan_batch(
        cfg.get("global_batch_size"),
        cfg.data.get("batch_size"),
        world_size,
        cfg.trainer.get("accumulate_grad_batches") or 1,
    )


def _count_ids(devices: Sequence | str) -> int:
    return len([d for d in (devices.split(",") if isinstance(devices, str) else devices) if str(d).strip()])


def _all_devices(accelerator: str) -> int | None:
    """What devices=auto (or -1) means for ``accelerator``, where it can be told without a Trainer."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count() or None
    return 1 if accelerator in ("cpu", "auto") else None


def configured_world_size(trainer: DictConfig) -> int | None:
    """The processes ``trainer`` (a trainer config) starts: devices per node x ``num_nodes``, as
    Lightning reads ``devices`` (a count, a list or "0,1" of ids, -1 or "auto" for all); None where
    only the Trainer can tell (e.g. devices=auto on a TPU)."""
    devices, accelerator = trainer.get("devices", "auto"), str(trainer.get("accelerator", "auto"))
    if isinstance(devices, str):
        devices = devices.strip()
        devices = int(devices) if devices.lstrip("-").isdigit() else devices
    if devices in ("auto", -1):
        per_node = _all_devices(accelerator)
    elif isinstance(devices, int):
        per_node = devices if devices > 0 else None
    else:
        per_node = _count_ids(devices) or None
    return None if per_node is None else per_node * (trainer.get("num_nodes") or 1)
