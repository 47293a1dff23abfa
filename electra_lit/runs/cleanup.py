"""A command that fails before it has done anything takes back the folder Hydra made for it.

Hydra makes the run folder (``hydra.run.dir``: a run's ``run_dir``, electra-prepare-data's
``out_dir``) and writes its ``.hydra/`` record and job log there before any electra_lit code runs,
so ``electra-pretrain optimizer.lr=-1`` used to leave ``runs/pretrain/optimizer.lr=-1/``, which
then lists like a run. :class:`NoteNewRunFolder`, a Hydra callback (conf/common.yaml), notes
before Hydra makes the folder whether it is new; :func:`removed_if_failed`, around every command
(electra_lit.cli.entry), removes it after a failure when it is new and holds nothing but what a
run writes before its first step, with the parent folders made for it. A folder that existed
before, or holds a checkpoint, metrics or anything else, is left as it is; so is the folder of a
run stopped by a fault while training (:class:`~electra_lit.errors.RunFault`), and every folder
of a multirun (Hydra makes those job by job, after any callback could look).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from electra_lit.errors import RunFault, config_error_in
from electra_lit.runs.run_dir import RunDir

HYDRA_FILES = (".hydra",)  # and the job log, *.log
_RUN = RunDir(".")
# what electra-pretrain and electra-finetune write into the run folder before their first step
# (Lightning's CSVLogger adds hparams.yaml, W&B its wandb/ folder)
BEFORE_FIRST_STEP = (_RUN.config.name, _RUN.tokenizer.name, _RUN.lock.name, _RUN.wandb_id.name, "hparams.yaml", "wandb")

_new: dict[str, Path | None] = {"folder": None, "top": None}


class NoteNewRunFolder(Callback):
    """Notes, before Hydra makes the run folder of a single run, whether it is new, and the
    topmost of the folders that will be made for it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # what Hydra does next: run_dir's ${hydra:...} need it
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        _new["folder"], _new["top"] = (folder, missing[-1]) if missing else (None, None)


def only_before_first_step(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but Hydra's files and what a run writes before its first step."""
    return all(
        entry.name in HYDRA_FILES + BEFORE_FIRST_STEP or (entry.is_file() and entry.suffix == ".log")
        for entry in folder.iterdir()
    )


def remove_new_folder(folder: Path, top: Path) -> bool:
    """Remove ``folder`` if it holds no more than a failed start leaves, then its parents up to
    ``top`` (the first made for it) while they are empty. Returns whether it was removed."""
    if not folder.is_dir() or not only_before_first_step(folder):
        return False
    shutil.rmtree(folder)
    for parent in folder.parents:
        if not parent.is_relative_to(top) or any(parent.iterdir()):
            break
        parent.rmdir()
    return True


@contextmanager
def removed_if_failed() -> Iterator[None]:
    """Run a command; if it fails (an exception, or an exit with a non-zero code) and Hydra made
    its run folder for it, remove that folder as :func:`remove_new_folder` says."""
    folder, top = _new["folder"], _new["top"]
    _new["folder"] = _new["top"] = None  # this command's, once
    try:
        yield
    except BaseException as err:
        succeeded = isinstance(err, SystemExit) and err.code in (0, None)
        if folder is not None and not succeeded and not isinstance(config_error_in(err), RunFault):
            with suppress(OSError):
                remove_new_folder(folder, top)
        raise
