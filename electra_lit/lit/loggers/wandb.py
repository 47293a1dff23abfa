"""Weights & Biases for electra_lit runs: W&B's files in the run folder, one W&B run per run folder.

A re-run of a command resumes its run folder; the W&B run id kept there (``RunDir.wandb_id``)
makes that re-run continue the same W&B run rather than start a new one. One group per ``-m``
sweep comes from :mod:`electra_lit.runs.sweep`.
"""

from __future__ import annotations

import netrc
import os
import secrets
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, WandbLogger

from electra_lit.errors import ConfigError
from electra_lit.runs.run_dir import RunDir

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
    path = RunDir(run_dir).wandb_id
    if path.is_file():
        return path.read_text().strip()
    if not _launched_as_global_rank_zero():
        return None
    new_id = "".join(secrets.choice(_ID_CHARS) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(new_id + "\n")
    os.replace(partial, path)  # atomic: a reader sees the whole id or no file
    return new_id


NO_API_KEY = (
    "logger=wandb logs online and W&B has no API key here: run `wandb login` (or set WANDB_API_KEY); or log "
    "locally with WANDB_MODE=offline and upload later with `wandb sync`, or use logger=csv"
)


def has_api_key() -> bool:
    """Whether W&B can authenticate: WANDB_API_KEY, an identity token file, or a ~/.netrc entry
    for its host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def check_can_log_online(mode: str | None) -> None:
    """Refuse, in one line and before the run starts, online logging without credentials."""
    mode = mode or os.environ.get("WANDB_MODE", "online")
    if mode in ("online", "run") and not os.environ.get("WANDB_DISABLED") and not has_api_key():
        raise ConfigError(NO_API_KEY)


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

    if _launched_as_global_rank_zero():  # only rank 0 starts a W&B run
        check_can_log_online(kwargs.get("mode"))
    if wandb.run is not None:
        # Hydra's basic launcher runs the jobs of a sweep one after another in one process, and
        # WandbLogger would log into a run an earlier job left open instead of starting its own.
        wandb.finish()
    # absolute: W&B's files are written by its service process, which a process started by another
    # one shares (WANDB_SERVICE) and which resolves a relative folder against its own working directory
    run_dir = Path(run_dir).absolute()
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
            try:
                logger.log_hyperparams(cfg_dict)  # the first use: starts the W&B run
            except Exception as err:
                if type(err).__name__ == "UsageError" and "API key" in str(err):  # a key check missed
                    raise ConfigError(NO_API_KEY) from None
                raise
