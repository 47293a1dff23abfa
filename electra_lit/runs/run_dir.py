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
        """The checkpoints a re-run may continue from, newest kind first, those that exist."""
        paths = [self.last_checkpoint, *self.requeue_checkpoints, self.previous_checkpoint]
        return [path for path in paths if path.exists()]

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
