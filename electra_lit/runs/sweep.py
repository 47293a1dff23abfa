"""One W&B group per ``-m`` sweep: the ``${wandb_sweep_group:}`` resolver and the Hydra callback
that fills it in the master process."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from electra_lit.runs.naming import run_name

_sweep: dict[str, str | None] = {"group": None}


def sweep_group() -> str | None:
    """``${wandb_sweep_group:}``: the group the master process of a multirun chose; None otherwise."""
    return _sweep["group"]


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
        _sweep["group"] = run_name(config.hydra.job.override_dirname)
        OmegaConf.select(config, "logger.wandb.group")  # resolving it fills the cache the jobs copy

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _sweep["group"] = None  # a later run in this process is no part of the sweep
