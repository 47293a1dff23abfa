"""Which process this is in a multi-process run, and gathering one value from every process.

Checkpoints are written by rank 0 but some state differs per rank (the position of a streamed
corpus, the random generators); gathering it into the checkpoint lets each rank resume its own.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torch.distributed; (0, 1) in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_from_ranks(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (a collective: every rank must call it)."""
    rank, world = rank_and_world()
    if world == 1:
        return [value]
    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values


def own_part(values: list[Any], what: str) -> Any:
    """This rank's entry of a list gathered by :func:`gather_from_ranks` when it was saved."""
    rank, world = rank_and_world()
    if len(values) != world:
        from electra_lit.errors import ConfigError

        raise ConfigError(
            f"the checkpoint holds {what} for {len(values)} process(es) and this run has {world}; "
            "resume with the same trainer.devices and trainer.num_nodes"
        )
    return values[rank]
