"""A CSV logger that writes ``metrics.csv`` straight into the run folder and keeps it on resume.

Lightning's CSVLogger nests files under name/version folders and deletes an existing
metrics.csv when it starts; a resumed run here appends instead, first dropping the rows that
the interrupted run logged after its last checkpoint (they are about to be logged again):
those from the resumed global step on (a row's ``step`` is the number of optimizer steps before
it: step N's rows say N - 1). The checkpoint callback says where (:meth:`RunDirCSVLogger.resume_at`);
without it, rows are dropped from the first step the resumed run logs.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only


class _ResumingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        self._resuming = self._fs.isfile(self.metrics_file_path)

    def resume_at(self, step: int) -> None:
        if self._resuming:
            self._resuming = False
            self._drop_rows_from(step)

    def save(self) -> None:
        if self._resuming and self.metrics:
            self._resuming = False
            self._drop_rows_from(min(int(row["step"]) for row in self.metrics))
        super().save()

    def _drop_rows_from(self, step: int) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            fieldnames = reader.fieldnames or []
            rows = [row for row in reader if row.get("step") and int(row["step"]) < step]
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = list(fieldnames)


class RunDirCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` and ``hparams.yaml`` live directly in ``run_dir``."""

    def __init__(self, run_dir: str, flush_logs_every_n_steps: int = 100):
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=flush_logs_every_n_steps)

    @rank_zero_only
    def resume_at(self, step: int) -> None:
        """Drop the rows of global steps from ``step`` on, which the resumed run logs again."""
        self.experiment.resume_at(step)

    @property
    @rank_zero_experiment
    def experiment(self) -> _ResumingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(log_dir=self.log_dir)
        return self._experiment
