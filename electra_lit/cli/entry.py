"""The one way an electra_lit command starts: ``hydra_entry`` turns a function of the composed
config into a console script whose foreseeable failures are one line (``PROGRAM: error: ...``,
exit code 2), and checks ``group=option`` overrides before Hydra composes anything."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from omegaconf import DictConfig

from electra_lit.errors import ConfigError, one_line_errors

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


def check_group_choices(overrides: Sequence[str]) -> None:
    """Reject ``group=option`` overrides whose option does not exist, in one line listing the
    options. Overrides are read by Hydra's own parser, so every form of its grammar is covered:
    ``+group@pkg=option``, sweeps ``a,b``, ``choice(a,b)``, ``glob(*)``. Malformed overrides are left
    for Hydra to report."""
    groups = config_groups()
    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except Exception:  # Hydra reports the syntax error itself, with its position
        return
    for override in parsed:
        group = override.key_or_group
        if group not in groups or override.is_delete():
            continue
        options = groups[group]
        value = override.value()
        if isinstance(value, Glob):
            chosen = value.filter(options)
            if not chosen:
                raise ConfigError(f"{group}={override.input_line.split('=', 1)[1]}: matches no option of config group "
                                  f"'{group}'; the options are: {', '.join(options)}")
            continue
        chosen = list(override.sweep_string_iterator()) if override.is_discrete_sweep() else [value]
        for option in chosen:
            if option is not None and str(option) not in options and str(option) != "null":
                raise ConfigError(
                    f"{group}={option}: no such option in config group '{group}'; choose one of: {', '.join(options)}"
                )


def hydra_entry(program: str, config_name: str, run: Callable[[DictConfig], Any]) -> Callable[[], None]:
    """The console script ``program``: Hydra composes ``conf/<config_name>.yaml`` with the command
    line and calls ``run(cfg)``; its return value is what a Hydra sweeper optimises. A
    :class:`ConfigError` raised anywhere inside prints as one line and exits with code 2."""

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name=config_name)
    def hydra_main(cfg: DictConfig) -> Any:
        with one_line_errors(program):
            return run(cfg)

    def main() -> None:
        with one_line_errors(program):
            check_group_choices(sys.argv[1:])
        hydra_main()

    main.__doc__ = f"``{program}``: conf/{config_name}.yaml, run by {run.__module__}.{run.__qualname__}."
    return main
