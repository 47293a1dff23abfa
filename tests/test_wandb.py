"""logger=wandb without network: files in run_dir, one W&B run per run folder across resumes."""

import pytest
import torch
import wandb
from lightning.fabric.utilities.rank_zero import rank_zero_only

import electra_lit.lit.loggers.wandb as lit_wandb
from conftest import FAST
from electra_lit.runs.pretrain import train

SHORT = [
    *FAST,
    "logger=wandb",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
]


def end_wandb():
    wandb.finish()  # WandbLogger leaves its run open after fit
    wandb.teardown()  # wandb reads WANDB_MODE once per setup


@pytest.fixture(autouse=True)
def fresh_wandb():
    """Each test starts W&B afresh and ends its run."""
    end_wandb()
    yield
    end_wandb()


@pytest.fixture
def made_loggers(monkeypatch):
    """The WandbLoggers that train() makes, to look at their W&B runs."""
    made = []

    def recording_factory(*args, **kwargs):
        made.append(factory(*args, **kwargs))
        return made[-1]

    factory = lit_wandb.wandb_logger
    monkeypatch.setattr(lit_wandb, "wandb_logger", recording_factory)
    return made


def offline_runs(run_dir):
    return sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_rerun_continues_the_same_wandb_run(compose_pretrain, tmp_path, monkeypatch, made_loggers):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    train(compose_pretrain(*SHORT, "trainer.max_steps=4"))
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    assert len(run_id) == 8
    (first,) = offline_runs(run_dir)
    assert first.endswith(f"-{run_id}")  # offline-run-<time>-<id>
    assert (run_dir / "metrics.csv").is_file()  # logger=wandb keeps the CSV too

    config = made_loggers[0].experiment.config
    assert config["masking"]["mask_prob"] == 0.15 and config["trainer"]["max_steps"] == 4
    assert config["run_dir"] == str(run_dir)

    # the same command with more steps resumes from the checkpoint, and W&B continues the run
    train(compose_pretrain(*SHORT, "trainer.max_steps=6"))
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
    assert (run_dir / "wandb_run_id").read_text().strip() == run_id
    runs = offline_runs(run_dir)
    assert len(runs) == 2 and all(name.endswith(f"-{run_id}") for name in runs)
    second = made_loggers[1].experiment
    assert second.id == run_id and second.config["trainer"]["max_steps"] == 6  # changed on resume
    assert made_loggers[0].experiment is not second  # the first run was finished, not reused


@pytest.mark.slow
def test_disabled_wandb_trains_and_writes_no_run(compose_pretrain, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    metrics = train(compose_pretrain(*SHORT, "trainer.max_steps=2"))
    assert metrics["val/loss"] > 0
    assert offline_runs(tmp_path / "run") == []
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_only_rank_zero_writes_the_run_id(tmp_path, monkeypatch):
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert lit_wandb.run_id(tmp_path) is None
    assert not (tmp_path / "wandb_run_id").exists()

    monkeypatch.setattr(rank_zero_only, "rank", 0)
    monkeypatch.setenv("NODE_RANK", "1")  # local rank 0 of the second node
    assert lit_wandb.run_id(tmp_path) is None

    monkeypatch.setenv("NODE_RANK", "0")
    made = lit_wandb.run_id(tmp_path)
    assert made and lit_wandb.run_id(tmp_path) == made
    assert [p.name for p in tmp_path.iterdir()] == ["wandb_run_id"]  # no partial file left
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert lit_wandb.run_id(tmp_path) == made  # other ranks read it


def test_group_name_and_tags_reach_wandb(compose_pretrain, tmp_path, monkeypatch):
    from hydra.utils import instantiate

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_pretrain("logger=wandb", "logger.wandb.group=ablation", "logger.wandb.tags=[small,mlm]")
    assert cfg.logger.wandb.group == "ablation"
    run = instantiate(cfg.logger.wandb).experiment
    assert (run.group, list(run.tags), run.name, run.project) == ("ablation", ["small", "mlm"], "run", "electra_lit")
    assert compose_pretrain("logger=wandb").logger.wandb.group is None  # a single run has no group


@pytest.mark.slow
def test_a_child_process_sharing_the_wandb_service_writes_into_its_own_run_dir(tmp_path, monkeypatch):
    """A process started by one that runs W&B (a -m sweep's subprocess, a test's) shares its W&B
    service, which resolves a relative run folder against its own working directory: the
    repository's runs/ used to collect the files of every test's sweep jobs."""
    import os
    import subprocess
    import sys

    parent, child = tmp_path / "parent", tmp_path / "child"
    child.mkdir()
    monkeypatch.chdir(tmp_path)
    wandb.init(mode="offline", dir=str(parent), project="electra_lit").finish()  # this process's service...
    assert os.environ.get("WANDB_SERVICE")  # ...which the child inherits
    code = (
        "import wandb; from electra_lit.lit.loggers.wandb import wandb_logger; "
        "wandb_logger(run_dir='runs/pretrain/job', project='electra_lit').experiment.log({'x': 1}); wandb.finish()"
    )
    subprocess.run([sys.executable, "-c", code], cwd=child, check=True, timeout=120, capture_output=True)
    assert list((child / "runs/pretrain/job/wandb").glob("offline-run-*/run-*.wandb"))  # the service's file, here
    assert not (tmp_path / "runs").exists() and not (parent / "runs").exists()
