"""The console script as a user runs it: files in run_dir, summary, and resume on re-run."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FAST


def electra_pretrain(run_dir, cache_dir, *overrides, timeout=300):
    script = Path(sys.executable).parent / "electra-pretrain"
    result = subprocess.run(
        [
            str(script),
            f"run_dir={run_dir}",
            f"cache_dir={cache_dir}",
            *FAST,
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def checkpoint(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_console_script_writes_the_run_and_resumes(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    first = electra_pretrain(run_dir, cache_dir, "trainer.max_steps=3")

    assert "Pretraining stopped at step 3 of 3." in first.stdout
    assert "Pretraining stopped at step 3 of 3." in (run_dir / "train.log").read_text()  # the summary is logged too
    assert f"longer      the run is complete; trainer.max_steps=N run_dir={run_dir} trains on to step N" in first.stdout
    assert f"checkpoint  {run_dir / 'checkpoints' / 'last.ckpt'}" in first.stdout
    assert "disc_auc" in first.stdout and "disc_gain" in first.stdout and "(all-original " in first.stdout
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["run_dir"] == str(run_dir) and config["trainer"]["max_steps"] == 3
    assert (run_dir / "tokenizer" / "vocab.txt").is_file()
    assert sorted(p.name for p in run_dir.iterdir() if p.suffix == ".csv") == ["metrics.csv"]
    ckpt = checkpoint(run_dir)
    assert ckpt["global_step"] == 3  # the last steps are saved, not only every val_check_interval
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == 3
    first_steps = [int(r["step"]) for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("train/loss")]
    assert first_steps == [0, 1, 2]

    # the same command with a longer budget continues from step 3
    second = electra_pretrain(run_dir, cache_dir, "trainer.max_steps=6")
    assert "Resuming from" in second.stdout + second.stderr
    ckpt = checkpoint(run_dir)
    assert ckpt["global_step"] == 6
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == 6
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 6
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == [0, 1, 2, 3, 4, 5]
    assert any(r.get("val/loss") for r in rows)

    # and once done, running it again trains nothing and keeps the state
    third = electra_pretrain(run_dir, cache_dir, "trainer.max_steps=6")
    assert "Pretraining stopped at step 6 of 6." in third.stdout
    assert checkpoint(run_dir)["global_step"] == 6


@pytest.mark.slow
def test_multirun_gives_each_job_its_own_run_dir(tmp_path, cache_dir):
    script = Path(sys.executable).parent / "electra-pretrain"
    result = subprocess.run(
        [
            str(script),
            "-m",
            "masking.mask_prob=0.15,0.25",
            f"cache_dir={cache_dir}",
            *FAST,
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = sorted(p for p in (tmp_path / "runs" / "pretrain").iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    for run_dir, mask_prob in zip(run_dirs, (0.15, 0.25)):
        assert f"masking.mask_prob={mask_prob}" in run_dir.name
        assert checkpoint(run_dir)["global_step"] == 2
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["masking"]["mask_prob"] == mask_prob


@pytest.mark.slow
def test_a_command_that_fails_before_training_takes_back_the_folder_hydra_made(tmp_path, cache_dir):
    script = Path(sys.executable).parent / "electra-pretrain"

    def fails(*overrides):
        command = [str(script), f"cache_dir={cache_dir}", *FAST, "tokenizer=bert_uncased", *overrides]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stderr

    assert "optimizer.lr=-1.0 must be positive" in fails("optimizer.lr=-1")  # refused before the run began
    assert not (tmp_path / "runs").exists()  # nor runs/pretrain/optimizer.lr=-1, nor the parents made for it
    assert "fewer than data.batch_size=100000" in fails("data.batch_size=100000", "run_dir=new")  # at data setup
    assert not (tmp_path / "new").exists()  # its config.yaml, tokenizer/ and train.log went with it

    kept = tmp_path / "kept"  # a folder that was there before is never removed
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    fails("optimizer.lr=-1", f"run_dir={kept}")
    assert (kept / "notes.txt").read_text() == "mine"


def test_a_multirun_with_one_run_dir_for_every_job_is_refused(tmp_path):
    script = Path(sys.executable).parent / "electra-pretrain"
    command = [str(script), "-m", "masking.mask_prob=0.15,0.25", f"run_dir={tmp_path / 'shared'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert (
        f"run_dir={tmp_path / 'shared'} with -m would put every job of the multirun in that one folder" in result.stderr
    )
    assert not (tmp_path / "shared").exists() and not (tmp_path / "runs").exists()  # refused before any job


def test_a_multirun_may_name_a_folder_per_job():
    from electra_lit.cli.entry import check_multirun_run_dir

    check_multirun_run_dir(["-m", "masking.mask_prob=0.15,0.25", "run_dir=runs/x/${hydra:job.num}"])
    check_multirun_run_dir(["-m", "run_dir=a,b"])  # a sweep over folders: one each
    check_multirun_run_dir(["run_dir=runs/x"])  # a single run


def test_a_multirun_over_a_key_that_does_not_name_folders_is_refused():
    from electra_lit.cli.entry import check_multirun_run_dir
    from electra_lit.errors import ConfigError

    with pytest.raises(ConfigError, match="-m sweeps trainer.max_steps, which does not name run folders"):
        check_multirun_run_dir(["-m", "trainer.max_steps=1000,2000"])
    check_multirun_run_dir(["-m", "trainer.max_steps=1000,2000", "run_dir=runs/x/${hydra:job.num}"])


@pytest.mark.slow
def test_printing_logging_and_the_step_count_do_not_name_the_run_folder(tmp_path, cache_dir):
    script = Path(sys.executable).parent / "electra-pretrain"
    common = [str(script), f"cache_dir={cache_dir}", *FAST, "trainer.val_check_interval=2"]
    for extra in (["trainer.max_steps=2"], ["trainer.max_steps=4", "print_config=false", "logger=none"]):
        result = subprocess.run([*common, *extra], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    folders = [p for p in (tmp_path / "runs" / "pretrain").iterdir() if p.is_dir()]
    assert len(folders) == 1  # the second command trained the first's run on to step 4
    assert checkpoint(folders[0])["global_step"] == 4
    assert "max_steps" not in folders[0].name and "print_config" not in folders[0].name


@pytest.mark.parametrize(
    "user, expected", [({}, "1000"), ({"GOMP_SPINCOUNT": "5"}, "5"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None)]
)
def test_commands_let_idle_openmp_threads_sleep_soon_before_torch_loads(user, expected):
    code = "import os, sys, electra_lit.cli; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | user
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == [str(expected), "False"]
