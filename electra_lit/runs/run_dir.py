"""The layout of a run folder: the one place where the name of every file a run writes is decided.

    run_dir/
      config.yaml            the resolved config of the latest start (RunDir.config)
      tokenizer/             the tokenizer the run trains with (RunDir.tokenizer)
      metrics.csv            every logged metric, appended across resumes (RunDir.metrics)
      hparams.yaml           Lightning's CSVLogger's copy of the hyperparameters
      checkpoints/last.ckpt  what a re-run resumes from (RunDir.last_checkpoint)
      checkpoints/last.previous.ckpt   the one it replaced, the fallback when it is unreadable
      checkpoints/best.ckpt  fine-tuning: the best epoch (RunDir.best_checkpoint)
      hpc_ckpt_N.ckpt        Lightning's SLURM requeue checkpoints (RunDir.requeue_checkpoints)
      run.lock               host, pid and start of the live run that owns the folder (RunDir.lock)
      wandb_run_id, wandb/   the W&B run this folder logs to, and W&B's files
      results.json, predictions/   fine-tuning's dev results and GLUE submission files
      exported/              the folder the closing summary suggests for electra-export

The folder's *name* comes from conf/common.yaml (``run_dir``, named after the command's overrides
by :func:`electra_lit.runs.naming.run_name`); everything inside it is named here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from electra_lit.errors import ConfigError

PREVIOUS_SUFFIX = ".previous.ckpt"


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """Where the checkpoint that ``path`` replaced is kept: ``last.ckpt`` -> ``last.previous.ckpt``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".ckpt") + PREVIOUS_SUFFIX)


@dataclass(frozen=True)
class RunDir:
    """Every path of one run folder, for pretraining and fine-tuning alike."""

    root: Path
    LAST = "last"  # the stem of last.ckpt (Lightning's ModelCheckpoint.CHECKPOINT_NAME_LAST)

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root).expanduser())

    def __str__(self) -> str:
        return str(self.root)

    def check_usable(self, key: str = "run_dir") -> None:
        """Refuse, in one line, a run folder that cannot be one: an existing file, or a path under a
        file. A folder that does not exist yet is fine (the run makes it). Call it before anything
        is built; ``key`` names the setting in the message."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"{key}={self.root} is a file, not a folder; give {key}=another path (a new folder, or a "
                f"run's folder to resume it), or move the file away"
            )
        blocking = next((p for p in self.root.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ConfigError(
                f"{key}={self.root}: {blocking} is a file, not a folder, so no folder can be made there; "
                f"give {key}=a path whose parents are folders"
            )

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / f"{self.LAST}.ckpt"

    @property
    def previous_checkpoint(self) -> Path:
        return previous_checkpoint(self.last_checkpoint)

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def requeue_checkpoints(self) -> list[Path]:
        """The ``hpc_ckpt_N.ckpt`` files Lightning's SLURM auto-requeue writes into the run folder."""
        return sorted(self.root.glob("hpc_ckpt_*.ckpt"))

    def resume_candidates(self) -> list[Path]:
        """The checkpoints a re-run may continue from, those that exist, newest kind first: last.ckpt,
        the requeue checkpoints, last.previous.ckpt, then any other ``*.ckpt`` in checkpoints/
        (``last-v1.ckpt`` of older versions, a file copied in by hand); temporary files are not."""
        paths = [self.last_checkpoint, *self.requeue_checkpoints, self.previous_checkpoint]
        others = sorted(p for p in self.checkpoints.glob("*.ckpt") if not p.name.startswith(".") and p not in paths)
        return [path for path in [*paths, *others] if path.exists()]

    @property
    def lock(self) -> Path:
        """Held by the live run of this folder (:class:`electra_lit.runs.lock.RunLock`)."""
        return self.root / "run.lock"

    @property
    def wandb_id(self) -> Path:
        """The W&B run id of this folder, so a re-run continues the same W&B run."""
        return self.root / "wandb_run_id"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def exported(self) -> Path:
        return self.root / "exported"
