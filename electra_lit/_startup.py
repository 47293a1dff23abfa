"""What importing electra_lit sets up once, for every entry point, notebook and test: the
config resolvers that conf/ uses, and filters for warnings a user cannot act on."""

from __future__ import annotations

import warnings

from omegaconf import OmegaConf

from electra_lit.runs.naming import run_name
from electra_lit.runs.sweep import sweep_group
from electra_lit.storage import local_dir


def register_resolvers() -> None:
    """``${run_name:...}`` (conf/common.yaml's run_dir), ``${local_dir:...}`` (local_run_dir) and
    ``${wandb_sweep_group:}`` (conf/logger/wandb.yaml)."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("local_dir", local_dir, replace=True)
    OmegaConf.register_new_resolver("wandb_sweep_group", sweep_group, use_cache=True, replace=True)


def quiet_known_warnings() -> None:
    """Deprecation notices from inside torchdata and Lightning, and one that does not apply."""
    warnings.filterwarnings("ignore", message=r".*'set_vital' is deprecated")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Streaming datasets define __len__ on purpose (a nominal length stops Lightning from prefetching
    # past the checkpointed position); each worker reads its own part, so the warning does not apply.
    warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined")
