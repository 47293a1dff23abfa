"""Loggers write inside run_dir; W&B works offline."""

import csv

from conftest import FAST
from electra_lit.train import train


def test_wandb_offline_run_lives_in_run_dir(compose_pretrain, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_pretrain(*FAST, "logger=wandb", "trainer.max_steps=2", "trainer.log_every_n_steps=1",
                           "trainer.val_check_interval=2")
    train(cfg)
    run_dir = tmp_path / "run"
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, list((run_dir / "wandb").iterdir())
    assert (run_dir / "metrics.csv").is_file()  # logger=wandb keeps the CSV too


def test_no_logger(compose_pretrain, tmp_path):
    metrics = train(compose_pretrain(*FAST, "logger=none", "trainer.max_steps=2", "trainer.val_check_interval=2"))
    assert metrics["val/loss"] > 0
    assert not (tmp_path / "run" / "metrics.csv").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


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
