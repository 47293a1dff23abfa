"""Runs that survive their machine: kill -9 and resume, SIGTERM/SIGUSR1, corrupt checkpoints,
mismatched checkpoints, 2-process DDP (gloo) with exact per-rank resume, and the trainer options."""

import csv
import importlib.util
import logging
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import FAST, STREAMED_AUSTEN, BatchRecorder
from electra_lit.errors import ConfigError
from electra_lit.lit import AtomicCheckpointIO
from electra_lit.runs.pretrain import train
from electra_lit.runs.resume import resume_checkpoint
from electra_lit.runs.run_dir import previous_checkpoint as previous_path
from electra_lit.runs.setup import check_trainer_runs_here

TESTS = Path(__file__).parent
SHORT = ["trainer.val_check_interval=4", "trainer.limit_val_batches=2", "trainer.log_every_n_steps=1"]


def run_cli(*overrides, timeout=300):
    """``electra-pretrain`` in a subprocess (its own process group, killed whole on timeout)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "electra_lit.cli.pretrain", *overrides],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"electra-pretrain {' '.join(overrides)} ran past {timeout}s:\n{output[-3000:]}")
    return process.returncode, output


def losses(run_dir):
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return {(int(r["step"]), key): r[key] for r in rows for key in ("train/loss", "val/loss") if r.get(key)}


def step_of(path):
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def signal_at(step, name):
    return [
        "+callbacks.signal._target_=cluster_callbacks.SignalAtStep",
        f"+callbacks.signal.step={step}",
        f"+callbacks.signal.signal_name={name}",
    ]


# ------------------------------------------------------------------ interruptions
@pytest.mark.slow
def test_kill_9_then_the_same_command_gives_the_uninterrupted_losses(tmp_path, cache_dir):
    common = [*FAST, *SHORT, f"cache_dir={cache_dir}", "trainer.max_steps=12"]
    rc, output = run_cli(*common, f"run_dir={tmp_path / 'straight'}")
    assert rc == 0, output[-3000:]

    killed = tmp_path / "killed"
    rc, output = run_cli(*common, f"run_dir={killed}", *signal_at(7, "KILL"))
    assert rc == -signal.SIGKILL, output[-3000:]
    assert step_of(killed / "checkpoints" / "last.ckpt") == 4
    rc, output = run_cli(*common, f"run_dir={killed}")
    assert rc == 0, output[-3000:]
    assert "Resuming from" in output and step_of(killed / "checkpoints" / "last.ckpt") == 12

    straight, resumed = losses(tmp_path / "straight"), losses(killed)
    assert {step for step, key in straight if key == "train/loss"} == set(range(12))
    assert resumed == straight  # every step's train loss and both validations, to the printed digit


@pytest.mark.slow
@pytest.mark.parametrize("name", ["TERM", "USR1"])
def test_a_preemption_signal_saves_and_exits_cleanly(tmp_path, cache_dir, name):
    common = [*FAST, *SHORT, f"cache_dir={cache_dir}", "trainer.max_steps=12", f"run_dir={tmp_path}"]
    rc, output = run_cli(*common, *signal_at(6, name))
    assert rc == 0, output[-3000:]
    assert "Pretraining stopped at step 6 of 12, by a preemption signal" in output
    assert "resume      run the same command again: it continues from the checkpoint" in output
    assert step_of(tmp_path / "checkpoints" / "last.ckpt") == 6  # the step it arrived in (checkpointing runs last)
    rc, output = run_cli(*common)
    assert rc == 0 and step_of(tmp_path / "checkpoints" / "last.ckpt") == 12, output[-3000:]


# ------------------------------------------------------------------ checkpoint files
def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    io.save_checkpoint({"global_step": 2}, path)
    assert torch.load(previous_path(path))["global_step"] == 1
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a local lambda cannot be pickled
        io.save_checkpoint({"global_step": 3, "unpicklable": lambda: 0}, path)  # fails mid-write
    assert torch.load(path)["global_step"] == 2


@pytest.mark.slow
def test_checkpoints_are_also_written_by_wall_time(compose_pretrain, tmp_path):
    train(
        compose_pretrain(
            *FAST,
            "trainer.max_steps=5",
            "trainer.val_check_interval=100",
            "trainer.limit_val_batches=1",
            "callbacks.model_checkpoint.every_n_minutes=1e-9",
        )
    )  # due after every step
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert step_of(last) == 5 and step_of(previous_path(last)) == 4  # no step multiple of 100 was reached


def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(compose_pretrain, tmp_path, caplog):
    cfg = compose_pretrain(*FAST, "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=1")
    train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert step_of(last) == 4 and step_of(previous_path(last)) == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, as by a full disk

    path, checkpoint = resume_checkpoint(cfg)
    assert path == previous_path(last) and checkpoint["global_step"] == 2
    assert f"{last} cannot be read" in caplog.text

    previous_path(last).write_bytes(b"not a checkpoint")
    with pytest.raises(
        ConfigError, match=r"last.ckpt is corrupt or truncated and no older checkpoint is readable; remove"
    ):
        resume_checkpoint(cfg)
    with pytest.raises(ConfigError, match=rf"^ckpt_path={last}: cannot be read \(.*\); it is corrupt or truncated$"):
        resume_checkpoint(compose_pretrain(*FAST, f"ckpt_path={last}"))


@pytest.mark.slow
def test_ckpt_path_starts_a_new_run_folder_and_a_rerun_never_goes_back_to_it(compose_pretrain, tmp_path, caplog):
    short = [*FAST, "trainer.val_check_interval=2", "trainer.limit_val_batches=1"]
    train(compose_pretrain(*short, "trainer.max_steps=2"))
    origin = tmp_path / "run" / "checkpoints" / "last.ckpt"
    branch = compose_pretrain(*short, "trainer.max_steps=4", f"ckpt_path={origin}", f"run_dir={tmp_path / 'branch'}")

    assert resume_checkpoint(branch)[0] == origin  # the branch has no checkpoint yet: it starts from the origin's
    train(branch)
    own = tmp_path / "branch" / "checkpoints" / "last.ckpt"
    assert step_of(own) == 4 and step_of(origin) == 2

    caplog.clear()
    caplog.set_level(logging.INFO, logger="electra_lit.runs.resume")
    path, checkpoint = resume_checkpoint(branch)  # the same command again (a requeue): its own checkpoint
    assert path == own and checkpoint["global_step"] == 4
    assert f"continuing from {own}; ckpt_path={origin} only starts a run folder without any" in caplog.text


@pytest.mark.slow
def test_a_checkpoint_of_another_size_or_tokenizer_is_refused_by_name(compose_pretrain):
    train(compose_pretrain(*FAST, "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1"))
    with pytest.raises(
        ConfigError,
        match=r"does not fit this config: model.discriminator.hidden_size=64 in the "
        r"checkpoint, 32 here; resume with the run's own model",
    ):
        train(compose_pretrain(*FAST, "model.discriminator.hidden_size=32", "trainer.max_steps=4"))
    with pytest.raises(
        ConfigError,
        match=r"was trained with another tokenizer \(vocab 8192, this config's: 30522\); "
        r"resume with it: tokenizer=pretrained tokenizer.path=.*run/tokenizer$",
    ):
        train(compose_pretrain(*FAST, "tokenizer=bert_uncased", "trainer.max_steps=4"))


# ------------------------------------------------------------------ batch size
@pytest.mark.slow
def test_global_batch_size_sets_gradient_accumulation_or_the_batch(compose_pretrain, tmp_path, caplog):
    BatchRecorder.seen.clear()  # FAST: 8 sequences per batch and device
    short = [
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "+callbacks.recorder._target_=conftest.BatchRecorder",
    ]
    train(compose_pretrain(*FAST, "global_batch_size=16", *short))
    assert [step for step, _ in BatchRecorder.seen] == [0, 0, 1, 1]

    BatchRecorder.seen.clear()  # data.batch_size=null: 16 / 2 accumulated = 8 per batch
    caplog.set_level(logging.INFO, logger="electra_lit.runs.pretrain")
    derived = tmp_path / "derived"
    train(
        compose_pretrain(
            *FAST,
            "global_batch_size=16",
            "data.batch_size=null",
            "trainer.accumulate_grad_batches=2",
            *short,
            run_dir=derived,
        )
    )
    assert [step for step, _ in BatchRecorder.seen] == [0, 0, 1, 1]
    saved = OmegaConf.load(derived / "config.yaml")
    assert (saved.data.batch_size, saved.trainer.accumulate_grad_batches, saved.global_batch_size) == (8, 2, 16)
    assert (
        "Batch: 16 sequences per optimizer step (global_batch_size=16) = 8 per device x 2 accumulated x 1 device(s)"
        in caplog.text
    )

    with pytest.raises(
        ConfigError,
        match=r"^global_batch_size=20 is not a multiple of data.batch_size=8 x 1 "
        r"device\(s\) = 8; use data.batch_size=5, or data.batch_size=null to derive it$",
    ):
        train(compose_pretrain(*FAST, "global_batch_size=20"))


# ------------------------------------------------------------------ DDP
DDP_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


@pytest.mark.slow
def test_two_process_ddp_resumes_each_ranks_data_exactly(tmp_path, cache_dir):
    """Streamed data: each rank reads its own part, so only per-rank loader states resume it."""

    def run(run_dir, max_steps, record):
        rc, output = run_cli(
            *FAST,
            *DDP_CPU,
            *STREAMED_AUSTEN,
            *SHORT,
            f"cache_dir={cache_dir}",
            f"run_dir={run_dir}",
            f"trainer.max_steps={max_steps}",
            "+callbacks.record._target_=cluster_callbacks.RecordBatches",
            f"+callbacks.record.path={record}",
        )
        assert rc == 0, output[-4000:]

    def batches(record, rank):
        return [tuple(line.split()[1:]) for line in open(f"{record}.{rank}")]

    run(tmp_path / "straight", 8, tmp_path / "straight.batches")
    run(tmp_path / "resumed", 5, tmp_path / "resumed.batches")
    run(tmp_path / "resumed", 8, tmp_path / "resumed.batches")

    assert step_of(tmp_path / "resumed" / "checkpoints" / "last.ckpt") == 8
    for rank in (0, 1):
        straight = batches(tmp_path / "straight.batches", rank)
        assert [int(step) for step, _ in straight] == list(range(8))
        assert batches(tmp_path / "resumed.batches", rank) == straight
    assert not {d for _, d in batches(tmp_path / "straight.batches", 0)} & {
        d for _, d in batches(tmp_path / "straight.batches", 1)
    }


# ------------------------------------------------------------------ trainer options
def test_every_trainer_option_composes_and_builds_or_says_what_is_missing(compose_pretrain, monkeypatch):
    ddp = compose_pretrain("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2").trainer
    check_trainer_runs_here(ddp)
    assert type(instantiate(ddp.strategy)).__name__ == "DDPStrategy"

    fsdp = instantiate(compose_pretrain("trainer=fsdp").trainer.strategy)
    assert type(fsdp).__name__ == "FSDPStrategy"
    assert [c.__name__ for c in fsdp.kwargs["auto_wrap_policy"]._module_classes] == ["TransformerLayer"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for option in ("gpu", "ddp", "fsdp"):
        with pytest.raises(ConfigError, match=r"needs a CUDA GPU and PyTorch sees none; use trainer=cpu"):
            check_trainer_runs_here(compose_pretrain(f"trainer={option}").trainer)

    tpu = compose_pretrain("trainer=tpu").trainer
    assert (tpu.accelerator, tpu.precision) == ("tpu", "bf16-true")
    deepspeed = compose_pretrain("trainer=deepspeed").trainer
    assert deepspeed.strategy.stage == 2 and deepspeed.plugins is None
    if importlib.util.find_spec("torch_xla") is None:
        with pytest.raises(ConfigError, match=r"^trainer.accelerator=tpu needs torch_xla"):
            check_trainer_runs_here(tpu)
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(ConfigError, match=r"^trainer=deepspeed needs the deepspeed package: pip install"):
            check_trainer_runs_here(OmegaConf.merge(deepspeed, {"accelerator": "cpu"}))
