"""Before the first job of a ``-m`` sweep: can the launcher start jobs here, and does every job
have what it reads? A sweep whose fifth job names a missing file would otherwise train four jobs
for hours and then stop; a SLURM sweep started where SLURM is absent would fail inside submitit
with a traceback.

``CheckJobsFirst`` is a Hydra callback (conf/common.yaml's ``hydra.callbacks.check_jobs``). It
composes each job's config as the launcher will (Hydra's own ``load_sweep_config``) and runs the
entry point's input check on it: ``check_inputs`` of electra_lit.runs.pretrain or .finetune,
which look at files without reading them. Jobs a search sampler has not chosen yet (Optuna's
``interval(...)``) cannot be listed; then the sweep's fixed part is checked once.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from electra_lit.errors import Abort, ConfigError, config_error_in

# Each entry point's input check, by its config name; the others get the composition only.
INPUT_CHECKS = {
    "pretrain": "electra_lit.runs.pretrain.check_inputs",
    "finetune": "electra_lit.runs.finetune.check_inputs",
}


def check_launcher(config: DictConfig) -> None:
    """Refuse a SLURM launcher (hydra/launcher=slurm) on a machine without ``sbatch``/``srun``."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    if "submitit" not in target or "Slurm" not in target:
        return
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise ConfigError(
            f"hydra/launcher=slurm submits jobs with sbatch and srun, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH here: run the command on the cluster's login node (where `sbatch --version` works), or leave "
            "hydra/launcher out to run the jobs here one after another"
        )


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """The override list of every job ``overrides`` expand to (Hydra's basic sweeper rule: the
    product of its ``a,b`` sweeps). A sweep a sampler decides (``interval``, ``tag``) cannot be
    listed: then the jobs of the rest."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(overrides)
    listable = [o for o in parsed if not o.is_sweep_override() or o.is_discrete_sweep()]
    (jobs,) = BasicSweeper.split_arguments(listable, max_batch_size=None)
    return jobs


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The override list of every job of the sweep's command line (:func:`expand_sweeps`)."""
    return expand_sweeps(list(config.hydra.overrides.task))


@contextmanager
def as_job(config: DictConfig, overrides: list[str], number: int) -> Iterator[DictConfig]:
    """The config job ``number`` gets, composed as the launcher composes it, with ``${hydra:...}``
    resolving to the job's values while inside."""
    job = GlobalHydra.instance().config_loader().load_sweep_config(config, overrides)
    with open_dict(job):
        job.hydra.job.num = job.hydra.job.id = number
    hydra_config = HydraConfig.instance()
    master = hydra_config.cfg
    hydra_config.set_config(job)
    task = copy.deepcopy(job)  # what the task function gets: the config without its hydra node
    with read_write(task), open_dict(task):
        del task["hydra"]
    try:
        yield task
    finally:
        hydra_config.cfg = master


class CheckJobsFirst(Callback):
    """At the start of a ``-m`` sweep, before any job: the launcher works here, and every job's
    config composes and passes its entry point's input check. The first failure is one line that
    names the job and its overrides; no job has run then."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_jobs(config)
        except ConfigError as err:
            raise Abort() from err  # Hydra would turn a ConfigError into a warning and start the sweep


def check_jobs(config: DictConfig) -> None:
    """:class:`CheckJobsFirst`'s checks on a sweep's master ``config``."""
    check_launcher(config)
    check = _input_check(config.hydra.job.config_name)
    jobs = job_overrides(config)
    for number, overrides in enumerate(jobs):
        try:
            with as_job(config, overrides, number) as job:
                check(job)
        except Exception as err:
            if (cause := config_error_in(err)) is None:
                raise
            raise ConfigError(
                f"-m job {number} of {len(jobs)} ({' '.join(overrides) or 'no overrides'}): {cause}; no job was started"
            ) from None


def _input_check(config_name: str) -> Callable[[DictConfig], None]:
    target = INPUT_CHECKS.get(config_name)
    return get_method(target) if target else (lambda job: None)
