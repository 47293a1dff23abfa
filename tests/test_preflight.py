"""A -m sweep is checked before its first job: the launcher works here, and every job's inputs
exist (electra_lit.runs.preflight)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from conftest import FAST
from electra_lit.errors import ConfigError
from electra_lit.runs.preflight import check_launcher, job_overrides


def electra(program, cwd, *args, path=None):
    """``program`` (a console script of the venv) run in ``cwd``; PATH replaced when given."""
    env = {**os.environ, "WANDB_MODE": "offline", **({"PATH": path} if path is not None else {})}
    script = str(Path(sys.executable).parent / program)
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def master_config(*overrides):
    """The master config of ``electra-pretrain -m OVERRIDES``, as a Hydra callback gets it."""
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        return compose("pretrain", overrides=list(overrides), return_hydra_config=True)


def test_jobs_are_the_product_of_the_command_lines_sweeps():
    cfg = master_config()
    OmegaConf.update(cfg, "hydra.overrides.task", ["masking.mask_prob=0.1,0.2", "objective=electra,mlm", "seed=3"])
    assert job_overrides(cfg) == [
        ["masking.mask_prob=0.1", "objective=electra", "seed=3"],
        ["masking.mask_prob=0.1", "objective=mlm", "seed=3"],
        ["masking.mask_prob=0.2", "objective=electra", "seed=3"],
        ["masking.mask_prob=0.2", "objective=mlm", "seed=3"],
    ]
    # a sweep a sampler decides cannot be listed: the fixed part is checked, once
    OmegaConf.update(cfg, "hydra.overrides.task", ["optimizer.lr=interval(1e-4,1e-3)", "seed=3"])
    assert job_overrides(cfg) == [["seed=3"]]


def test_slurm_launcher_needs_sbatch_and_srun_on_path(tmp_path, monkeypatch):
    cfg = master_config("hydra/launcher=slurm")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ConfigError, match=r"^hydra/launcher=slurm .* sbatch and srun are not on PATH here: run .*login node"
    ):
        check_launcher(cfg)
    for command in ("sbatch", "srun"):  # a login node
        (tmp_path / command).write_text("#!/bin/sh\n")
        (tmp_path / command).chmod(0o755)
    check_launcher(cfg)
    check_launcher(master_config())  # the default launcher needs neither


@pytest.mark.slow
def test_a_missing_corpus_in_the_last_job_stops_the_sweep_before_the_first(tmp_path, cache_dir):
    (tmp_path / "a.txt").write_text("One sentence here.\n\nAnother one there.\n")
    result = electra(
        "electra-pretrain",
        tmp_path,
        "-m",
        "data=text",
        "data.corpus.paths=a.txt,missing.txt",
        "trainer.max_steps=2",
        f"cache_dir={cache_dir}",
        *FAST,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("electra-pretrain: error: -m job 1 of 2 (data=text data.corpus.paths=missing.txt ")
    assert line.endswith(
        "'missing.txt' is no file or folder and matches no file; give existing files, folders or glob patterns; no job was started"
    )
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


@pytest.mark.slow
def test_a_config_error_in_one_job_stops_the_sweep_before_the_first(tmp_path):
    result = electra("electra-pretrain", tmp_path, "-m", "masking.mask_prob=0.15,1.5", "trainer.max_steps=2")
    assert result.returncode == 2
    assert result.stderr.startswith("electra-pretrain: error: -m job 1 of 2 (masking.mask_prob=1.5 ")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_slurm_sweep_without_slurm_is_one_line(tmp_path):
    result = electra("electra-pretrain", tmp_path, "-m", "hydra/launcher=slurm", "seed=1,2", path=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("electra-pretrain: error: hydra/launcher=slurm submits jobs with sbatch and srun")
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_finetune_sweep_with_one_tasks_data_missing_starts_no_job(tmp_path, tiny_checkpoint):
    from test_finetune import sst2_dir

    glue = tmp_path / "glue_data"
    sst2_dir(glue / "SST-2", n_train=8, n_dev=4, n_test=0)  # RTE's folder is missing
    result = electra(
        "electra-finetune", tmp_path, "-m", "task=sst2,rte", f"glue_dir={glue}", f"init_from={tiny_checkpoint}"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("electra-finetune: error: -m job 1 of 2 (task=rte ")
    assert (
        f"{glue / 'RTE' / 'train.tsv'} does not exist; glue_dir or task.data_dir must hold GLUE's rte files"
        in result.stderr
    )
    assert not (tmp_path / "runs").exists()
