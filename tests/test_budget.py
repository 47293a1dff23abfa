"""Compute budgets of pretraining: ``perf/flops_total`` (analytic training FLOPs since step 0), the
FLOPs budget ``budget.flops`` and Lightning's wall-clock ``trainer.max_time``; each stopped run ends
with the stopping step in last.ckpt and says why in its closing lines."""

import csv

import pytest
import torch

from conftest import FAST, build
from electra_lit.config.schema import validate_config
from electra_lit.errors import ConfigError
from electra_lit.lit.callbacks.budget import BudgetConfig
from electra_lit.lit.callbacks.throughput import FLOPS_TOTAL
from electra_lit.runs.pretrain import train

# a metrics row every step, one validation batch, no validation before the stop
SHORT = [*FAST, "trainer.log_every_n_steps=1", "trainer.limit_val_batches=1", "trainer.val_check_interval=100"]


@pytest.mark.parametrize("flops", ["0", "-1e12"])
def test_a_budget_that_is_not_positive_is_refused_naming_the_key(compose_pretrain, flops):
    with pytest.raises(ConfigError, match=rf"^budget\.flops={float(flops)} must be positive"):
        validate_config(compose_pretrain(f"budget.flops={flops}"))


def test_no_budget_is_the_default(compose_pretrain):
    assert validate_config(compose_pretrain()).budget == BudgetConfig(flops=None)


def flops_per_step(cfg) -> int:
    """What one optimizer step of FAST costs: a batch's FLOPs, one device, no accumulation."""
    _, datamodule, module = build(cfg)
    return module.batch_flops(datamodule)


def flops_rows(run_dir) -> dict[int, float]:
    with open(run_dir / "metrics.csv") as file:
        return {int(row["step"]): float(row[FLOPS_TOTAL]) for row in csv.DictReader(file) if row.get(FLOPS_TOTAL)}


def checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_a_budget_stops_the_run_where_its_schedule_ends_and_a_resume_counts_on(compose_pretrain, tmp_path, capsys):
    run_dir = tmp_path / "run"
    per_step = flops_per_step(compose_pretrain(*SHORT))
    # 3.5 steps' worth: 4 steps, the first to reach it; trainer.max_steps=50 gives way to the budget
    train(compose_pretrain(*SHORT, "trainer.max_steps=50", f"budget.flops={3.5 * per_step}"))

    out = capsys.readouterr().out
    assert f"Pretraining stopped at step 4 of 4, by budget.flops={3.5 * per_step:g}" in out
    assert f"longer      budget.flops={3.5 * per_step:g} is spent; a larger one with run_dir={run_dir} trains on" in out
    saved = checkpoint(run_dir)
    assert saved["global_step"] == 4
    assert saved["lr_schedulers"][0]["_last_lr"][0] == 0.0  # the LR schedule decayed to 0 at the budget
    rows = flops_rows(run_dir)
    assert rows == {step: (step + 1) * per_step for step in range(4)}  # a row of step s: s + 1 steps done
    with open(run_dir / "metrics.csv") as file:
        assert any(row.get("val/loss") and row["step"] == "3" for row in csv.DictReader(file))  # validated at the stop

    # a larger budget in the same folder: on from the checkpoint's step 4 to 6, counting from step 0
    train(compose_pretrain(*SHORT, "trainer.max_steps=50", f"budget.flops={6 * per_step}", run_dir=run_dir))
    assert checkpoint(run_dir)["global_step"] == 6
    assert flops_rows(run_dir) == {step: (step + 1) * per_step for step in range(6)}


@pytest.mark.slow
def test_max_time_stops_saves_the_stopping_step_and_stays_spent_on_a_rerun(compose_pretrain, tmp_path, capsys):
    run_dir = tmp_path / "run"
    # no metrics row falls in the second it runs: the only perf/flops_total is the one at the stop
    overrides = [*SHORT, "trainer.max_steps=100000", "trainer.max_time=00:00:00:01", "trainer.log_every_n_steps=1000"]
    train(compose_pretrain(*overrides))

    out = capsys.readouterr().out
    step = checkpoint(run_dir)["global_step"]
    assert 0 < step < 100000
    assert f"Pretraining stopped at step {step} of 100000, by trainer.max_time=0:00:01" in out
    assert f"longer      trainer.max_time=0:00:01 is spent; a larger one with run_dir={run_dir}" in out
    per_step = flops_per_step(compose_pretrain(*SHORT))
    assert flops_rows(run_dir) == {step - 1: step * per_step}  # the total at the stop, off the cadence

    train(compose_pretrain(*overrides))  # the checkpoint keeps the elapsed time: nothing more to train
    assert checkpoint(run_dir)["global_step"] == step
    assert max(flops_rows(run_dir)) == step - 1
