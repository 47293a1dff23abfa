"""The one way an electra_lit command starts: ``hydra_entry`` turns a function of the composed
config into a console script whose foreseeable failures are one line (``PROGRAM: error: ...``,
exit code 2), and checks ``group=option`` overrides before Hydra composes anything. A config
that does not compose (a key the schema lacks, a value of the wrong type) is one line too."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import CompactHydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from electra_lit import storage
from electra_lit.errors import ConfigError, one_line, one_line_errors
from electra_lit.runs.cleanup import removed_if_failed
from electra_lit.runs.naming import keys_not_in_run_names
from electra_lit.runs.run_dir import RunDir

CONFIG_PACKAGE = "electra_lit.conf"


def config_groups() -> dict[str, list[str]]:
    """Every top-level config group and its options, read from the packaged conf/ folder
    (files starting with "_" are bases that options compose, not options)."""
    root = resources.files(CONFIG_PACKAGE)
    return {
        entry.name: sorted(
            f.name[: -len(".yaml")] for f in entry.iterdir() if f.name.endswith(".yaml") and not f.name.startswith("_")
        )
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith("__")
    }


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """The command line's overrides as Hydra reads them (flags left out); [] when Hydra will
    report a syntax error itself, with its position."""
    try:
        return OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except Exception:
        return []


def chosen_options(override: Override, options: list[str]) -> list[str]:
    """The options a ``group=...`` override picks: one, a sweep's several (``a,b``, ``choice(a,b)``)
    or a glob's matches (``glob(*)``)."""
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(options)
    values = override.sweep_string_iterator() if override.is_discrete_sweep() else [value]
    return [str(v) for v in values if v is not None]


def check_group_choices(overrides: Sequence[str]) -> None:
    """Reject ``group=option`` overrides whose option does not exist, in one line listing the
    options. Overrides are read by Hydra's own parser, so every form of its grammar is covered:
    ``+group@pkg=option``, sweeps ``a,b``, ``choice(a,b)``, ``glob(*)``."""
    groups = config_groups()
    for override in parse_overrides(overrides):
        group = override.key_or_group
        if group not in groups or override.is_delete():
            continue
        options = groups[group]
        chosen = chosen_options(override, options)
        if isinstance(override.value(), Glob) and not chosen:
            raise ConfigError(
                f"{group}={override.input_line.split('=', 1)[1]}: matches no option of config group "
                f"'{group}'; the options are: {', '.join(options)}"
            )
        for option in chosen:
            if option not in options and option != "null":
                raise ConfigError(
                    f"{group}={option}: no such option in config group '{group}'; choose one of: {', '.join(options)}"
                )


def check_run_dir(overrides: Sequence[str]) -> None:
    """Refuse a ``run_dir=`` that cannot be a folder (a file, or a path under one) before Hydra,
    which makes the run folder (``hydra.run.dir``) before any of our code runs."""
    for override in parse_overrides(overrides):
        if override.key_or_group == "run_dir" and not override.is_sweep_override():
            value = override.value()
            if isinstance(value, str) and storage.is_remote(value):
                storage.check_url(value, "run_dir", must_exist=False)  # the bucket, credentials, endpoint
            elif isinstance(value, str):
                RunDir(value).check_usable()


def check_multirun_run_dir(argv: Sequence[str]) -> None:
    """Refuse a ``-m`` whose jobs would share run folders: ``run_dir=X`` for every job (the second
    would "resume" the first's finished checkpoint and train nothing; a search would score every
    trial with the first one's result), or a sweep over a key that does not name run folders
    (``trainer.max_steps=1000,2000``). By default each job's folder is named after its overrides."""
    if not any(arg in ("-m", "--multirun") for arg in argv):
        return
    overrides = parse_overrides(argv)
    run_dirs = [o for o in overrides if o.key_or_group == "run_dir"]
    for override in run_dirs:
        value = override.value()
        if not override.is_sweep_override() and isinstance(value, str) and "${" not in value:
            raise ConfigError(
                f"run_dir={value} with -m would put every job of the multirun in that one folder (the second "
                "would resume the first's checkpoint); leave run_dir out, and each job gets its own folder "
                "named after its overrides, or make it differ per job: run_dir='" + value + "/${hydra:job.num}'"
            )
    if run_dirs:
        return
    unnamed = set(keys_not_in_run_names())
    for override in overrides:
        if override.is_sweep_override() and override.key_or_group in unnamed:
            raise ConfigError(
                f"-m sweeps {override.key_or_group}, which does not name run folders (conf/common.yaml's "
                "exclude_keys), so its jobs would share one; give each job its own folder: "
                "run_dir='runs/pretrain/NAME/${hydra:job.num}'"
            )


_RAISE = "HYDRA_FULL_ERROR"  # set: Hydra raises its errors instead of printing them


@contextmanager
def one_line_composition_errors(program: str) -> Iterator[Callable[[], None]]:
    """Hydra prints a config that fails to compose over several lines and exits with 1. Inside,
    HYDRA_FULL_ERROR=1 makes it raise instead, and the error prints as ``program: error: ...``
    with exit code 2. The yielded function, called once the config is composed, unsets the
    variable: a run's own errors are then reported as Hydra always does. A user who set
    HYDRA_FULL_ERROR gets Hydra's full report."""
    ours = _RAISE not in os.environ
    if ours:
        os.environ[_RAISE] = "1"
    composed = False

    def done() -> None:
        nonlocal composed
        composed = True
        if ours:
            os.environ.pop(_RAISE, None)

    try:
        yield done
    except (CompactHydraException, OmegaConfBaseException) as err:
        if not ours or composed:
            raise
        print(f"{program}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
    finally:
        done()


def hydra_entry(
    program: str,
    config_name: str,
    run: Callable[[DictConfig], Any],
    command_line_checks: Sequence[Callable[[Sequence[str]], None]] = (),
) -> Callable[[], None]:
    """The console script ``program``: Hydra composes ``conf/<config_name>.yaml`` with the command
    line and calls ``run(cfg)``; its return value is what a Hydra sweeper optimises. Before that,
    the group options and ``command_line_checks`` look at the command line. A :class:`ConfigError`
    raised anywhere inside, and a command line the schema refuses, print as one line and exit
    with code 2; a failed command removes the run folder Hydra made for it, if nothing of a run
    is in it yet (electra_lit.runs.cleanup)."""

    composed: Callable[[], None] = lambda: None  # noqa: E731  set while Hydra composes

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name)
    def hydra_main(cfg: DictConfig) -> Any:
        composed()
        with removed_if_failed(), one_line_errors(program):
            return run(cfg)

    def main() -> None:
        nonlocal composed
        with one_line_errors(program):
            for check in (check_group_choices, check_run_dir, check_multirun_run_dir, *command_line_checks):
                check(sys.argv[1:])
        with one_line_errors(program), one_line_composition_errors(program) as composed:
            hydra_main()

    main.__doc__ = f"``{program}``: conf/{config_name}.yaml, run by {run.__module__}.{run.__qualname__}."
    return main
