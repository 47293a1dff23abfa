"""An Optuna search over electra-pretrain's config (``hparams_search=electra_optuna``): Optuna's
ask/tell loop, each trial a Hydra job handed to the configured launcher.

- A trial is an ordinary run: its values are overrides, so it trains in a run folder named after
  them, and running it again resumes that folder (or, finished, reports its last ``val/loss``).
- The study lives in ``storage`` (by default a journal file in the sweep folder) and ``n_trials``
  counts the COMPLETE trials it should hold: the same command run again, after a kill or a
  time-out, runs only the trials still missing.
- A trial its command left RUNNING (killed mid-trial, or after the trial ended but before its
  value was told) is marked FAIL and enqueued again with the same values; the new trial resumes
  the same run folder, so nothing is lost and no run trains twice.
- A trial that fails, or returns no value (it never validated), is told FAIL and the search goes
  on; a search in which no trial completes ends with one line saying so.
- ``val/loss`` (what electra-pretrain returns) is only comparable between trials that measure the
  same thing: a search space varying the masking, the objective, the model (the generator's
  strength), the tokenizer or the validation data is refused before any trial.

Optuna is imported inside the functions that use it: Hydra imports the plugin module at every
start, optuna or not.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from electra_lit.errors import ConfigError, one_line, one_line_errors
from electra_lit.runs.naming import keys_not_in_run_names

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

SYNTAX = "interval(a, b), tag(log, interval(a, b)), int(interval(a, b)), range(a, b, step), choice(a, b) or a,b"

# Keys whose values change what val/loss measures, not only how well the model learns: trials that
# vary one of them (or a key under it) cannot be ranked by the loss. Key -> what it changes.
LOSS_CHANGING = {
    "masking": "which tokens the generator predicts and the discriminator sees replaced",
    "objective": "the loss itself",
    "model": "the generator, whose strength sets how hard the discriminator's task is",
    "recipe": "the model, masking and tokenizer",
    "tokenizer": "the vocabulary the generator predicts over",
    "data": "the validation sequences",
    "seed": "the validation documents and their masking",
}
SAME_MEASURE = ("data.batch_size", "data.num_workers")  # under data, yet the validation stays the same


class TrialStopped(RuntimeError):
    """A trial ended the process (a one-line error, e.g. a diverged loss): that trial failed."""


@dataclass
class TrialTask:
    """The task function as each trial runs it. electra-pretrain reports a foreseeable failure
    (a diverged loss, a full disk) as one line and ``sys.exit(2)``, which would end the whole
    search; here it fails only its trial (Hydra's job runner records exceptions, not exits)."""

    task_function: Callable[[DictConfig], Any]

    def __call__(self, cfg: DictConfig) -> Any:
        try:
            return self.task_function(cfg)
        except SystemExit as stop:
            if stop.code in (0, None):
                raise
            raise TrialStopped(f"the trial stopped with exit code {stop.code} (its error is above)") from None


def program_name() -> str:
    """The running command as its one-line errors name it (``electra-pretrain``), also under
    ``python -m electra_lit.cli.pretrain``."""
    name = os.path.basename(sys.argv[0])
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    for script in entry_points(group="console_scripts"):
        if script.name == name or (main is not None and script.module == main.name):
            return script.name
    return name


# ----------------------------------------------------------------------------- the search space
def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``hydra.sweeper.params`` by dotted key: ``{optimizer.lr: ...}`` as the YAML writes it and
    ``{optimizer: {lr: ...}}`` as ``hydra.sweeper.params.optimizer.lr=...`` makes it."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flat_params(value, name) if isinstance(value, Mapping) else {name: value})
    return flat


def parse_param(key: str, value: Any) -> Override:
    """``hydra.sweeper.params.KEY: VALUE`` read as Hydra reads ``KEY=VALUE`` on a command line."""
    try:
        return OverridesParser.create().parse_override(f"{key}={value}")
    except Exception as err:
        raise ConfigError(
            f"hydra.sweeper.params.{key}={value}: Hydra cannot parse it ({str(err).splitlines()[0]}); "
            f"write it in Hydra's sweep syntax: {SYNTAX}"
        ) from None


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of a sweep override: ``interval`` a float (or, cast with ``int()``,
    an integer) range, log-scaled with ``tag(log, ...)``; ``range`` integers by step (float
    ranges: their values as choices); ``choice`` and ``a,b`` categories."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep, key = override.value(), override.key_or_group
    try:
        if isinstance(sweep, IntervalSweep):
            log_scale = "log" in sweep.tags
            if isinstance(sweep.start, int) and isinstance(sweep.end, int):
                return IntDistribution(sweep.start, sweep.end, log=log_scale)
            return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
        if isinstance(sweep, RangeSweep):
            values = list(override.sweep_iterator())
            if all(isinstance(v, int) for v in values) and sweep.step > 0 and len(values) > 1:
                return IntDistribution(values[0], values[-1], step=int(sweep.step))
            return CategoricalDistribution(values)
        if isinstance(sweep, ChoiceSweep):
            return CategoricalDistribution(list(override.sweep_iterator()))
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{key}={override.get_value_element_as_str()}: not a search range Optuna takes: {err}"
        ) from None
    raise ConfigError(f"{key}={override.get_value_element_as_str()}: an Optuna search cannot sample this; use {SYNTAX}")


def search_space(params: Mapping[str, Any], arguments: Sequence[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The distributions to search, by override key, and the overrides every trial gets. The
    space is ``hydra.sweeper.params`` plus the command line's sweeps (``'optimizer.lr=interval(1e-4,
    1e-3)'``); a key the command line sets, to a sweep or a value, replaces its entry in params."""
    given = OverridesParser.create().parse_overrides(list(arguments))
    on_command_line = {o.key_or_group for o in given}
    overrides = [parse_param(k, v) for k, v in flat_params(params).items() if k not in on_command_line]
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for override in [*overrides, *given]:
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed.append(f"{override.get_key_element()}={override.get_value_element_as_str()}")
    if not space:
        raise ConfigError(
            "hydra.sweeper.params is empty and the command line sweeps nothing: give the search space, "
            f"e.g. 'optimizer.lr=tag(log, interval(1e-4, 2e-3))' ({SYNTAX})"
        )
    return space, fixed


def check_comparable(keys: Sequence[str]) -> None:
    """Refuse a search over a key whose trials could not be ranked by val/loss (LOSS_CHANGING), or
    that does not name run folders (its trials would share one and resume each other)."""
    unnamed = set(keys_not_in_run_names())
    for name in keys:
        key = name.lstrip("+")
        if key in unnamed:
            raise ConfigError(
                f"the search varies {key}, which does not name run folders (conf/common.yaml's exclude_keys), "
                "so its trials would share one; set it once for the whole search"
            )
        changed = next((why for k, why in LOSS_CHANGING.items() if key == k or key.startswith(f"{k}.")), None)
        if changed and key not in SAME_MEASURE:
            raise ConfigError(
                f"the search varies {key}, which changes {changed}: the val/loss it minimises is then not "
                f"comparable between trials; set {key} once for the whole search (one search per value), "
                "and compare those values downstream (electra-finetune)"
            )


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """A trial's values as command-line overrides, written as Hydra's own sweeps write them."""
    return [f"{key}={Override._get_value_element_as_str(value)}" for key, value in params.items()]


def describe(dist: BaseDistribution) -> str:
    """A distribution as the log shows it: ``[0.0001, 0.002] log``, ``{a, b}``."""
    if hasattr(dist, "choices"):
        return "{" + ", ".join(map(str, dist.choices)) + "}"
    step = f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else ""
    return f"[{dist.low}, {dist.high}]{' log' if dist.log else ''}{step}"


def representative(space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """A value of each distribution (its low end, its first choice), to check that trials compose."""
    return {key: d.choices[0] if hasattr(d, "choices") else d.low for key, d in space.items()}


# ----------------------------------------------------------------------------- the study
def open_storage(storage: str | None) -> Any:
    """None: in memory; a URL (``sqlite:///optuna.db``, ``postgresql://...``): that database;
    anything else: a journal file (append-only, safe on NFS, no database needed)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        return None
    storage = str(storage)
    fix = "give a database URL such as sqlite:///optuna.db, a journal file path, or null (in memory)"
    if "://" in storage:
        try:
            return optuna.storages.RDBStorage(storage)
        except Exception as err:
            raise ConfigError(f"hydra.sweeper.storage={storage}: cannot open it ({first_line(err)}); {fix}") from None
    path = Path(storage).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:
        raise ConfigError(f"hydra.sweeper.storage={storage}: cannot write the journal file ({err}); {fix}") from None


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def open_study(storage: str | None, study_name: str, direction: str) -> optuna.Study:
    """The study ``study_name`` in ``storage``, created or, when it exists, loaded to go on."""
    import optuna

    opened = open_storage(storage)
    try:
        study = optuna.create_study(storage=opened, study_name=study_name, direction=direction, load_if_exists=True)
    except Exception as err:
        raise ConfigError(
            f"hydra.sweeper.storage={storage}: cannot open study '{study_name}' ({first_line(err)})"
        ) from None
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"hydra.sweeper.direction={direction}: study '{study_name}' in {storage} was created to "
            f"{study.direction.name.lower()}; keep that direction, or name a new study (hydra.sweeper.study_name)"
        )
    return study


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Mark FAIL the trials an earlier command left RUNNING and enqueue their values again; returns
    their numbers. Only one command may work on a study at a time: another one's running trials
    would be taken for interrupted ones."""
    from optuna.trial import TrialState

    interrupted = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in interrupted:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return [trial.number for trial in interrupted]


def build_sampler(sampler: Mapping | None, trials_so_far: int) -> Any:
    """``hydra.sweeper.sampler``, its seed advanced by the study's trial count: a resumed study
    asks for new values, not the first command's again (their run folders exist)."""
    from hydra.utils import instantiate

    if sampler is None:
        return None
    settings = OmegaConf.to_container(sampler, resolve=True) if isinstance(sampler, DictConfig) else dict(sampler)
    if settings.get("seed") is not None:
        settings["seed"] = int(settings["seed"]) + trials_so_far
    try:
        return instantiate(settings)
    except Exception as err:
        raise ConfigError(
            f"hydra.sweeper.sampler: cannot build {settings.get('_target_')} ({first_line(err)})"
        ) from None


def trial_value(number: int, result: JobReturn) -> float | None:
    """A finished trial's value; None, logged with the reason, for a trial that failed."""
    try:
        value = result.return_value
    except TrialStopped as err:
        why = str(err)
    except Exception as err:  # a bug, or out of memory: its traceback helps
        log.error("Trial %d failed: %s", number, first_line(err), exc_info=err)
        return None
    else:
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        why = (
            "it returned no val/loss: it never validated (trainer.limit_val_batches=0?)"
            if value is None
            else f"it returned {value!r}, not a finite number"
        )
    log.error("Trial %d failed: %s", number, why)
    return None


def study_results(study: optuna.Study, storage: str | None) -> dict[str, Any]:
    """What optimization_results.yaml holds."""
    from optuna.trial import TrialState

    best = study.best_trial
    return {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": storage,
        "direction": study.direction.name.lower(),
        "best_trial": best.number,
        "best_params": dict(best.params),
        "best_value": best.value,
        "n_complete": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        "n_failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    }


# ----------------------------------------------------------------------------- the sweeper's work
class OptunaSearch:
    """What hydra_plugins.electra_lit_optuna's sweeper does: conf/hydra/sweeper/electra_optuna.yaml's
    keys, the launcher the trials run on, and the ask/run/tell loop."""

    def __init__(
        self,
        sweeper: Sweeper,
        task_function: Callable[[DictConfig], Any],
        *,
        direction: str = "minimize",
        study_name: str = "electra_pretrain",
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: DictConfig | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        from hydra.core.plugins import Plugins

        self.sweeper, self.config = sweeper, sweeper.config
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.sampler, self.params = n_trials, n_jobs, sampler, params or {}
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=sweeper.hydra_context, task_function=TrialTask(task_function), config=sweeper.config
        )

    def check_settings(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction={self.direction} must be minimize or maximize")
        for key in ("n_trials", "n_jobs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value} must be a positive integer")

    def composition_error(self, overrides: list[str]) -> str | None:
        """Why a trial's overrides do not compose into a config (one line), or None."""
        try:
            self.sweeper.validate_batch_is_legal([overrides])
        except Exception as err:
            return one_line(err)
        return None

    def run(self, arguments: list[str]) -> dict[str, Any]:
        """The whole search; a ConfigError prints as one line and exits with code 2."""
        with one_line_errors(program_name()):
            return self.search(arguments)

    def search(self, arguments: list[str]) -> dict[str, Any]:
        space, fixed = self.plan(arguments)
        study = self.resume()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        to_run = self.trials_to_run(study, space)
        while to_run > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, to_run))]
            to_run -= len(trials)
            self.run_batch(study, trials, fixed)
        return self.report(study, sweep_dir)

    def plan(self, arguments: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
        """The search space and the fixed overrides, checked before the study is touched: the
        settings, that val/loss can rank the trials, and that a trial's overrides compose."""
        self.check_settings()
        space, fixed = search_space(self.params, arguments)
        check_comparable(list(space))
        error = self.composition_error([*fixed, *trial_overrides(representative(space))])
        if error is not None:
            raise ConfigError(f"the search's trials do not compose into a config: {error}")
        return space, fixed

    def resume(self) -> optuna.Study:
        """The study, its interrupted trials enqueued again, with a sampler seeded for where it is."""
        study = open_study(self.storage, self.study_name, self.direction)
        requeued = requeue_interrupted(study)
        if requeued:
            log.info("Trials %s were running when their command stopped: their values run again", requeued)
        study.sampler = build_sampler(self.sampler, len(study.trials)) or study.sampler
        return study

    def trials_to_run(self, study: optuna.Study, space: Mapping[str, BaseDistribution]) -> int:
        """The COMPLETE trials the study lacks (n_trials counts the study's, not this command's)."""
        from optuna.trial import TrialState

        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        to_run = max(0, self.n_trials - complete)
        log.info(
            "Optuna study '%s' (%s): %d of %d trials complete, %d to run; space: %s",
            self.study_name,
            self.storage or "in memory",
            complete,
            self.n_trials,
            to_run,
            ", ".join(f"{key} {describe(d)}" for key, d in space.items()),
        )
        return to_run

    def run_batch(self, study: optuna.Study, trials: list[optuna.Trial], fixed: list[str]) -> None:
        """Launch the trials as one batch and tell Optuna each one's value, or that it failed."""
        from optuna.trial import TrialState

        jobs = []
        for trial in trials:
            overrides = [*fixed, *trial_overrides(trial.params)]
            error = self.composition_error(overrides)
            if error is None:
                jobs.append((trial, overrides))
                continue
            log.error("Trial %d failed: its overrides do not compose: %s", trial.number, error)
            study.tell(trial, state=TrialState.FAIL)
        if not jobs:
            return
        results = self.launcher.launch([overrides for _, overrides in jobs], initial_job_idx=jobs[0][0].number)
        for (trial, _), result in zip(jobs, results):
            value = trial_value(trial.number, result)
            if value is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
                log.info("Trial %d: val/loss = %s with %s", trial.number, value, trial.params)

    def report(self, study: optuna.Study, sweep_dir: Path) -> dict[str, Any]:
        """Write optimization_results.yaml; a study without any COMPLETE trial is an error."""
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
            raise ConfigError(
                f"no trial of Optuna study '{self.study_name}' completed ({failed} failed, errors above); "
                "a trial must validate at least once to return val/loss; fix the cause and run the command "
                f"again: it goes on with the study in {self.storage or 'memory (nothing kept)'}"
            )
        results = study_results(study, self.storage)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info(
            "Best trial %d of '%s': %s = %s with %s (%s)",
            results["best_trial"],
            self.study_name,
            "val/loss",
            results["best_value"],
            results["best_params"],
            sweep_dir / "optimization_results.yaml",
        )
        return results
