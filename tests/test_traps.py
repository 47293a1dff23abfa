"""Traps a newcomer falls into with short runs, sweeps and run identity: each fixed or refused."""

import csv

import pytest

from conftest import FAST
from electra_lit.errors import config_error_in
from electra_lit.runs.pretrain import train


def test_a_20_step_run_logs_metrics_validation_and_tokens_per_second(compose_pretrain, tmp_path):
    # the recipe's intervals (log every 50 steps, validate every 100) would log nothing at all
    train(compose_pretrain(*FAST, "trainer.max_steps=20", "trainer.limit_val_batches=1"))
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    train_rows = [r for r in rows if r.get("train/loss")]
    assert len(train_rows) == 10 and train_rows[-1]["train/gen_acc"]  # every 2 steps, with the metrics
    assert [r["step"] for r in rows if r.get("val/loss")] == ["19"]  # validation at the last step
    assert any(r.get("train/device/items_per_sec") for r in rows)  # tokens/s
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "log_every_n_steps: 2" in saved and "val_check_interval: 20" in saved  # what the run used


def test_wandb_online_without_an_api_key_is_one_line(compose_pretrain, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("NETRC", raising=False)
    with pytest.raises(Exception) as raised:  # Hydra wraps what a _target_ raises; the CLI prints the cause
        train(compose_pretrain(*FAST, "logger=wandb", "trainer.max_steps=2"))
    assert str(config_error_in(raised.value)).startswith("logger=wandb logs online and W&B has no API key here")
    assert not (tmp_path / "run" / "metrics.csv").exists()  # before training
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    from electra_lit.lit.loggers.wandb import has_api_key

    assert has_api_key()  # what `wandb login` writes counts


def test_a_branch_that_trains_nothing_still_continues_from_its_start(compose_pretrain, tmp_path):
    from electra_lit.runs.resume import read_checkpoint

    common = [*FAST, "trainer.val_check_interval=2", "trainer.limit_val_batches=1"]
    train(compose_pretrain(*common, "trainer.max_steps=2", run_dir=tmp_path / "trunk"))
    trunk = tmp_path / "trunk" / "checkpoints" / "last.ckpt"
    branch = tmp_path / "branch"
    train(compose_pretrain(*common, "trainer.max_steps=2", f"ckpt_path={trunk}", run_dir=branch))
    assert read_checkpoint(branch / "checkpoints" / "last.ckpt")["global_step"] == 2  # nothing trained, yet saved
    train(compose_pretrain(*common, "trainer.max_steps=4", run_dir=branch))  # the summary's "longer" hint
    assert read_checkpoint(branch / "checkpoints" / "last.ckpt")["global_step"] == 4
