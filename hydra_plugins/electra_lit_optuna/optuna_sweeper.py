"""The Hydra side of the Optuna search: a :class:`Sweeper` that hands its work to
:class:`electra_lit.runs.optuna_search.OptunaSearch`.

Hydra imports every module of ``hydra_plugins`` at each start to discover plugins, so this one
imports neither Optuna nor electra_lit until a search actually runs.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """``hydra/sweeper=electra_optuna``: conf/hydra/sweeper/electra_optuna.yaml's keys arrive here."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.search = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from electra_lit.runs.optuna_search import OptunaSearch

        self.hydra_context, self.config = hydra_context, config
        self.search = OptunaSearch(self, task_function, **self.settings)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.search is not None, "Hydra calls setup() before sweep()"
        return self.search.run(arguments)
