"""Weights & Biases for electra_lit runs: W&B's files in the run folder, one W&B run per run folder.

Re-running a command resumes from ``run_dir/checkpoints/last.ckpt``; the W&B run id kept in
``run_dir/wandb_run_id`` makes that re-run continue the same W&B run rather than start a new one.
Importing this module registers the ``${wandb_sweep_group:}`` resolver that conf/logger/wandb.yaml uses.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

RUN_ID_FILE = "wandb_run_id"
_ID_CHARS = string.ascii_lowercase + string.digits  # W&B's own ids look like this: 8 of these


def _launched_as_global_rank_zero() -> bool:
    """Whether this process will be global rank 0, judged before the Trainer exists.

    Lightning's ``rank_zero_only.rank`` comes from the launcher's variables (RANK from torchrun,
    SLURM_PROCID from srun, LOCAL_RANK in the processes Lightning starts itself). LOCAL_RANK counts
    within a node, so NODE_RANK (Lightning's variable for multi-node runs) has to be 0 too.
    """
    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def run_id(run_dir: str | os.PathLike) -> str | None:
    """The W&B run id of ``run_dir``, read from its id file; the first run's rank 0 creates it.

    Other ranks never write the file (they could race rank 0 to it) and get None when it is not
    there yet: only global rank 0 creates a W&B run, so they need no id.
    """
    path = Path(run_dir) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    if not _launched_as_global_rank_zero():
        return None
    new_id = "".join(secrets.choice(_ID_CHARS) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{RUN_ID_FILE}.{os.getpid()}")
    partial.write_text(new_id + "\n")
    os.replace(partial, path)  # atomic: a reader sees the whole id or no file
    return new_id


def wandb_logger(
    run_dir: str | os.PathLike,
    project: str,
    entity: str | None = None,
    group: str | None = None,
    tags: Iterable[str] = (),
    log_model: bool | str = False,
    name: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` that keeps its files under ``run_dir/wandb`` and resumes the W&B run of
    ``run_dir`` if there is one. ``name`` defaults to the run folder's name; ``kwargs`` go to ``wandb.init``.

    WANDB_MODE=offline writes ``run_dir/wandb/offline-run-*`` (``wandb sync`` uploads it later);
    WANDB_MODE=disabled logs nothing. Neither touches the network.
    """
    import wandb

    if wandb.run is not None:
        # Hydra's basic launcher runs the jobs of a sweep one after another in one process, and
        # WandbLogger would log into a run an earlier job left open instead of starting its own.
        wandb.finish()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=str(run_dir),
        project=project,
        entity=entity,
        group=group,
        tags=list(tags),
        log_model=log_model,
        name=name or run_dir.name,
        id=run_id(run_dir),
        resume="allow",  # the id's run if W&B has it, else a new run with that id
        **kwargs,
    )


def log_config(loggers: Iterable[Logger], cfg_dict: dict) -> None:
    """Make the resolved run config the config of each W&B run, so runs can be compared by it.

    Lightning's ``WandbLogger.log_hyperparams`` runs on global rank 0 only and passes
    ``allow_val_change=True``: a resumed run may change values (``trainer.max_steps``, say).
    """
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_hyperparams(cfg_dict)


# ------------------------------------------------------------------ one W&B group per sweep
_sweep = {"group": None}


def sweep_group() -> str | None:
    """``${wandb_sweep_group:}``: the group the master process of a multirun chose; None otherwise."""
    return _sweep["group"]


OmegaConf.register_new_resolver("wandb_sweep_group", sweep_group, use_cache=True, replace=True)


class WandbSweepGroup(Callback):
    """Gives every job of one ``-m`` sweep the same W&B group, named after the sweep's overrides.

    Hydra composes each job's config anew but copies the master config's resolver cache into it
    (``ConfigLoaderImpl.load_sweep_config``; that is how jobs share a ``${now:...}`` timestamp).
    Resolving ``logger.wandb.group`` once in the master process, here, puts the group in that
    cache, so every job gets it, also jobs on other machines (hydra-submitit-launcher pickles the
    master config for them). Re-running the same sweep command gives the same group, as it
    resumes the same runs. A group set on the command line is left as it is.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from electra_lit.train import run_name  # here, not at the top: electra_lit.train imports this module

        _sweep["group"] = run_name(config.hydra.job.override_dirname)
        OmegaConf.select(config, "logger.wandb.group")  # resolving it fills the cache the jobs copy

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _sweep["group"] = None  # a later run in this process is no part of the sweep
