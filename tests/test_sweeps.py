"""Sweeps: -m runs each job in its own run folder, an Optuna search, and the SLURM launcher config."""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import FAST

TINY_RUN = [*FAST, "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1"]


def electra_pretrain_multirun(cwd, *overrides):
    """``electra-pretrain -m ...`` run in ``cwd``, W&B offline; returns the run folders it made."""
    result = subprocess.run(
        [sys.executable, "-m", "electra_lit.cli.pretrain", "-m", *overrides],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return sorted(p for p in (cwd / "runs" / "pretrain").iterdir() if p.is_dir() and not p.name.startswith("."))


def compose_with_hydra(*overrides):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("pretrain", overrides=["run_dir=unused", *overrides], return_hydra_config=True)


@pytest.mark.slow
def test_multirun_jobs_get_own_run_dirs_and_one_wandb_group(tmp_path, cache_dir):
    from electra_lit.runs.naming import keys_not_in_run_names, run_name

    sweep = ["masking.mask_prob=0.15,0.2", *TINY_RUN, "logger=wandb"]
    run_dirs = electra_pretrain_multirun(tmp_path, *sweep, f"cache_dir={cache_dir}")
    assert len(run_dirs) == 2
    groups, run_ids, mask_probs = set(), set(), set()
    for run_dir in run_dirs:  # named after each job's overrides (long names end in a hash)
        assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
        assert (run_dir / "metrics.csv").is_file()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        mask_probs.add(config["masking"]["mask_prob"])
        groups.add(config["logger"]["wandb"]["group"])
        run_id = (run_dir / "wandb_run_id").read_text().strip()
        assert list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))
        run_ids.add(run_id)
    assert mask_probs == {0.15, 0.2}  # each job got its own value
    assert len(run_ids) == 2  # a W&B run per job...
    named = sorted(o for o in sweep if o.split("=")[0] not in keys_not_in_run_names())
    assert groups == {run_name(",".join(named))}  # ...in one group, named after the sweep's overrides


def test_optuna_search_config():
    import optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    sweeper = compose_with_hydra("hparams_search=electra_optuna").hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert (sweeper.direction, sweeper.n_trials, sweeper.n_jobs) == ("minimize", 20, 1)
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    space = {o.key_or_group: create_optuna_distribution_from_override(o) for o in overrides}
    assert space == {
        "optimizer.lr": optuna.distributions.LogUniformDistribution(1e-4, 2e-3),
        "masking.mask_prob": optuna.distributions.UniformDistribution(0.1, 0.4),
    }

    sampler = instantiate(sweeper.sampler)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    first_trials = [optuna.create_study(sampler=instantiate(sweeper.sampler)).ask(space).params for _ in range(2)]
    assert first_trials[0] == first_trials[1]  # seeded: a re-run asks for the same trials
    instantiate(sweeper)  # the sweeper accepts every key


@pytest.mark.slow
def test_optuna_search_runs_trials_and_reports_the_best(tmp_path, cache_dir):
    run_dirs = electra_pretrain_multirun(
        tmp_path, "hparams_search=electra_optuna", "hydra.sweeper.n_trials=2", f"cache_dir={cache_dir}", *TINY_RUN
    )
    assert len(run_dirs) == 2 and all((d / "checkpoints" / "last.ckpt").is_file() for d in run_dirs)
    results = yaml.safe_load((tmp_path / "runs" / "pretrain" / "optimization_results.yaml").read_text())
    assert results["best_value"] > 0 and set(results["best_params"]) == {"optimizer.lr", "masking.mask_prob"}


def test_slurm_launcher_config_reaches_sbatch(tmp_path, monkeypatch):
    """No SLURM here: the launcher is built from the config and its sbatch script is captured."""
    from submitit.slurm.slurm import SlurmExecutor

    cfg = compose_with_hydra(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.tasks_per_node=4",
    )
    launcher = instantiate(cfg.hydra.launcher)
    # by name: Hydra's plugin scan imports hydra_plugins modules anew, so classes differ by identity
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["max_num_timeout"] == 0 and launcher.params["signal_delay_s"] == 300

    class Submitted(Exception):
        pass

    def capture_sbatch(executor, command):
        raise Submitted(executor.max_num_timeout, executor._make_submission_file_text(command, "uid"))

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"
    monkeypatch.setattr(SlurmExecutor, "_submit_command", capture_sbatch)
    monkeypatch.chdir(tmp_path)
    launcher.setup(hydra_context=None, task_function=print, config=cfg)
    with pytest.raises(Submitted) as submitted:
        launcher.launch([["masking.mask_prob=0.15"], ["masking.mask_prob=0.2"]], initial_job_idx=0)
    max_num_timeout, sbatch = submitted.value.args
    assert max_num_timeout == 0  # submitit requeues nothing; Lightning does, on SIGUSR1
    flags = {line for line in sbatch.splitlines() if line.startswith("#SBATCH")}
    for flag in [
        "--signal=USR1@300",
        "--partition=gpu",
        "--time=1440",
        "--nodes=1",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--array=0-1%2",
    ]:
        assert f"#SBATCH {flag}" in flags, sbatch
    assert not any("requeue" in flag for flag in flags)
