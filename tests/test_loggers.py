"""Loggers write inside run_dir; W&B works offline."""

import csv

import pytest

from conftest import FAST
from electra_lit.runs.pretrain import train


@pytest.mark.slow
def test_wandb_offline_run_lives_in_run_dir(compose_pretrain, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_pretrain(
        *FAST, "logger=wandb", "trainer.max_steps=2", "trainer.log_every_n_steps=1", "trainer.val_check_interval=2"
    )
    train(cfg)
    run_dir = tmp_path / "run"
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, list((run_dir / "wandb").iterdir())
    assert (run_dir / "metrics.csv").is_file()  # logger=wandb keeps the CSV too


@pytest.mark.slow
def test_no_logger(compose_pretrain, tmp_path):
    metrics = train(compose_pretrain(*FAST, "logger=none", "trainer.max_steps=2", "trainer.val_check_interval=2"))
    assert metrics["val/loss"] > 0
    assert not (tmp_path / "run" / "metrics.csv").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_metrics_csv_is_flat_and_named(compose_pretrain, tmp_path):
    train(compose_pretrain(*FAST, "trainer.max_steps=4", "trainer.log_every_n_steps=2", "trainer.val_check_interval=4"))
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    columns = set(rows[0])
    for stage in ("train", "val"):
        for name in ("loss", "gen_loss", "disc_loss", "gen_acc", "disc_acc", "replaced_frac"):
            assert f"{stage}/{name}" in columns
    assert "train/lr" in columns
    val = [r for r in rows if r["val/loss"]]
    assert len(val) == 1 and 0 <= float(val[0]["val/disc_acc"]) <= 1


def test_resumed_csv_replaces_rows_logged_after_the_checkpoint(tmp_path):
    from electra_lit.lit import RunDirCSVLogger

    first = RunDirCSVLogger(str(tmp_path))
    for step in range(10):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.save()
    # interrupted at step 9, resumed from a checkpoint at step 6: steps 6..9 are logged again
    resumed = RunDirCSVLogger(str(tmp_path))
    for step in range(6, 8):
        resumed.log_metrics({"train/loss": 100.0 + step, "val/loss": 1.0}, step=step)
    resumed.save()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [float(r["train/loss"]) for r in rows[5:]] == [5.0, 106.0, 107.0]
    assert rows[0]["val/loss"] == "" and rows[-1]["val/loss"] == "1.0"
