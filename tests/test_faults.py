"""Faults that real clusters produce, performed for real, and what must survive them: a moved or
copied run folder, a diverging loss, a full disk during a save, a signal to the whole process
group, two runs on one folder."""

import csv
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from test_cluster import run_cli

from conftest import FAST, build
from electra_lit.errors import ConfigError, RunFault
from electra_lit.lit.callbacks import checkpoint as checkpoint_module
from electra_lit.lit.callbacks.checkpoint import AtomicCheckpointIO
from electra_lit.runs.lock import RunLock
from electra_lit.runs.pretrain import train
from electra_lit.runs.resume import read_checkpoint, resume_checkpoint

SHORT = [*FAST, "trainer.val_check_interval=3", "trainer.limit_val_batches=1", "print_config=false"]


def saved_step(path) -> int:
    return read_checkpoint(path)["global_step"]


def checkpoint_files(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_moved_or_copied_run_folder_resumes_into_the_same_files(compose_pretrain, tmp_path, how):
    first, second = tmp_path / "first", tmp_path / "second"
    train(compose_pretrain(*SHORT, "trainer.max_steps=3", run_dir=first))
    (shutil.move if how == "moved" else shutil.copytree)(first, second)

    train(compose_pretrain(*SHORT, "trainer.max_steps=6", run_dir=second))
    assert checkpoint_files(second) == ["last.ckpt", "last.previous.ckpt"]  # no last-v1.ckpt
    assert saved_step(second / "checkpoints" / "last.ckpt") == 6
    train(compose_pretrain(*SHORT, "trainer.max_steps=9", run_dir=second))  # and again: no going back
    assert saved_step(second / "checkpoints" / "last.ckpt") == 9


def fake_checkpoint(path, step: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": step}, path)


def test_resume_takes_the_newest_checkpoint_whatever_its_name(compose_pretrain, tmp_path):
    run = tmp_path / "run"
    fake_checkpoint(run / "checkpoints" / "last.ckpt", 30)
    fake_checkpoint(run / "checkpoints" / "last-v1.ckpt", 40)  # written by an older version after a move
    fake_checkpoint(run / "checkpoints" / ".last.ckpt.tmp", 50)  # a save that never finished
    path, checkpoint = resume_checkpoint(compose_pretrain(*FAST))
    assert path.name == "last-v1.ckpt" and checkpoint["global_step"] == 40


@pytest.mark.slow
def test_a_diverging_run_stops_with_one_line_and_keeps_finite_checkpoints(compose_pretrain, tmp_path):
    diverging = [
        *FAST,
        "optimizer.lr=1e3",
        "lr_schedule.warmup_steps=0",
        "trainer.max_steps=40",
        "trainer.val_check_interval=4",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=2",
    ]
    with pytest.raises(RunFault, match=r"became non-finite \(NaN/inf\) at step \d+; stopped at step \d+") as caught:
        train(compose_pretrain(*diverging))
    assert "optimizer.lr=100 (now 1000)" in str(caught.value)
    for path in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):
        weights = read_checkpoint(path)["state_dict"].values()
        assert all(torch.isfinite(w).all() for w in weights if w.is_floating_point()), path
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))


def fill_the_disk(monkeypatch, after_saves: int) -> None:
    """Checkpoint writes after the first ``after_saves`` write a few bytes and fail as a full disk does."""
    real_save, calls = torch.save, []

    def save(obj, file, *args, **kwargs):
        calls.append(file)
        if len(calls) <= after_saves:
            return real_save(obj, file, *args, **kwargs)
        file.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(monkeypatch, tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the good one")
    fill_the_disk(monkeypatch, after_saves=0)
    with pytest.raises(RunFault, match=rf"could not write the checkpoint {target}: No space left on device") as caught:
        AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(2**20)}, target)
    assert "it needs about 4 MB" in str(caught.value) and "MB are free there" in str(caught.value)
    assert target.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the temporary file is gone


def test_a_save_never_stages_in_the_system_temp_folder(monkeypatch, tmp_path):
    import tempfile

    def no_system_temp(*args, **kwargs):
        raise AssertionError("a checkpoint save used the system's temp folder")

    monkeypatch.setattr(tempfile, "mkstemp", no_system_temp)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_system_temp)
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, tmp_path / "checkpoints" / "last.ckpt")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]


@pytest.mark.slow
def test_a_run_whose_disk_fills_stops_with_its_last_checkpoint_intact(compose_pretrain, tmp_path, monkeypatch):
    fill_the_disk(monkeypatch, after_saves=1)
    with pytest.raises(RunFault, match="previous checkpoints are intact"):
        train(compose_pretrain(*SHORT, "trainer.max_steps=9"))
    run = tmp_path / "run"
    assert checkpoint_files(run) == ["last.ckpt"]
    assert saved_step(run / "checkpoints" / "last.ckpt") == 3


# ------------------------------------------------------------------ signals to the whole process group
@pytest.mark.slow
@pytest.mark.parametrize("name", ["TERM", "USR1"])
def test_a_signal_to_the_process_group_saves_and_exits_cleanly(tmp_path, cache_dir, name):
    # what scancel, timeout and many schedulers do: the loader workers get the signal too
    common = [*SHORT, "data.num_workers=2", f"cache_dir={cache_dir}", "trainer.max_steps=12", f"run_dir={tmp_path}"]
    group_signal = [
        "+callbacks.signal._target_=cluster_callbacks.SignalAtStep",
        "+callbacks.signal.step=6",
        f"+callbacks.signal.signal_name={name}",
        "+callbacks.signal.group=true",
    ]
    rc, output = run_cli(*common, *group_signal)
    assert rc == 0, output[-3000:]
    assert "Pretraining stopped at step 6 of 12, by a preemption signal" in output
    assert "exited unexpectedly" not in output
    assert saved_step(tmp_path / "checkpoints" / "last.ckpt") == 6
    rc, output = run_cli(*common)
    assert rc == 0 and saved_step(tmp_path / "checkpoints" / "last.ckpt") == 12, output[-3000:]


# ------------------------------------------------------------------ one live run per folder
def other_owner(lock_path, **fields) -> None:
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-01-01 00:00:00", "slurm_job": None}
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path.write_text(json.dumps({**owner, **fields}))


def test_a_live_owner_keeps_its_folder(tmp_path):
    lock = tmp_path / "run.lock"
    other_owner(lock, pid=os.getppid())  # a live process that is not this one
    with pytest.raises(ConfigError, match=rf"{tmp_path} is in use by another run \(host .*, pid {os.getppid()}"):
        RunLock(lock).acquire()
    other_owner(lock, host="elsewhere")  # another host, touched just now
    with pytest.raises(ConfigError, match="in use by another run"):
        RunLock(lock).acquire()


@pytest.mark.parametrize("case", ["dead-pid", "requeued-slurm-job", "untouched-elsewhere"])
def test_a_gone_owner_is_taken_over_with_a_warning(tmp_path, monkeypatch, caplog, case):
    lock = tmp_path / "run.lock"
    if case == "dead-pid":
        dead = subprocess.Popen([sys.executable, "-c", ""])
        dead.wait()
        other_owner(lock, pid=dead.pid)
    elif case == "requeued-slurm-job":
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        other_owner(lock, host="node-17", slurm_job="4242")
    else:
        other_owner(lock, host="elsewhere")
        os.utime(lock, (time.time() - 3600, time.time() - 3600))
    with caplog.at_level(logging.WARNING, logger="electra_lit.runs.lock"):
        taken = RunLock(lock, stale_minutes=30)
        taken.acquire()
    assert "Taking over" in caplog.text
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    taken.release()
    assert not lock.exists()


@pytest.mark.slow
def test_a_second_run_on_a_busy_folder_fails_at_once_and_a_dead_ones_is_taken_over(tmp_path, cache_dir):
    common = [*SHORT, f"cache_dir={cache_dir}", f"run_dir={tmp_path}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "electra_lit.cli.pretrain", *common, "trainer.max_steps=100000"],
        env={**os.environ, "WANDB_MODE": "offline"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "metrics.csv").exists() and time.time() < deadline:
            time.sleep(0.5)
        rc, output = run_cli(*common, "trainer.max_steps=8")
        assert rc == 2 and f"is in use by another run (host {socket.gethostname()}, pid {first.pid}" in output
        assert output.count("\n") <= 3, output  # one line, no traceback
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    rc, output = run_cli(*common, "trainer.max_steps=8")  # the killed run's lock is stale: taken over
    assert rc == 0 and "Taking over" in output, output[-3000:]


# ------------------------------------------------------------------ metrics rows and checkpoints agree
def metric_rows(run_dir) -> dict:
    rows = csv.DictReader(open(run_dir / "metrics.csv"))
    return {(int(r["step"]), key): r[key] for r in rows for key in ("train/loss", "val/loss") if r.get(key)}


@pytest.mark.slow
def test_kill_9_right_after_a_save_loses_no_metrics_row(tmp_path, cache_dir):
    common = [
        *SHORT,
        "trainer.val_check_interval=4",
        "trainer.log_every_n_steps=1",
        f"cache_dir={cache_dir}",
        "trainer.max_steps=8",
    ]
    rc, output = run_cli(*common, f"run_dir={tmp_path / 'straight'}")
    assert rc == 0, output[-3000:]
    killed = tmp_path / "killed"
    kill_after_save = ["+callbacks.kill._target_=cluster_callbacks.KillAfterSave", "+callbacks.kill.step=4"]
    rc, output = run_cli(*common, f"run_dir={killed}", *kill_after_save)
    assert rc == -signal.SIGKILL and saved_step(killed / "checkpoints" / "last.ckpt") == 4, output[-3000:]
    rc, output = run_cli(*common, f"run_dir={killed}")
    assert rc == 0, output[-3000:]
    straight = metric_rows(tmp_path / "straight")
    assert {step for step, key in straight if key == "train/loss"} == set(range(8))
    assert metric_rows(killed) == straight  # every row, once: none lost before the save, none doubled after


# ------------------------------------------------------------------ SLURM: warning signal, requeue, resume
FAKE_SCONTROL = """#!{python}
import os, signal, sys
with open(os.environ["SCONTROL_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
os.killpg(os.getpgid(os.getppid()), signal.SIGTERM)  # what SLURM does to a requeued job's processes
"""


@pytest.mark.slow
def test_slurm_warning_signal_to_the_process_group_requeues_and_the_job_resumes(tmp_path, cache_dir, monkeypatch):
    bin_dir, log = tmp_path / "bin", tmp_path / "scontrol.log"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL.format(python=sys.executable))
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "electra",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "SCONTROL_LOG": str(log),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    run = tmp_path / "run"
    common = [*SHORT, "data.num_workers=2", f"cache_dir={cache_dir}", "trainer.max_steps=12", f"run_dir={run}"]
    warning = [  # sbatch --signal=USR1@300 signals every task; scancel-like delivery to the whole group
        "+callbacks.signal._target_=cluster_callbacks.SignalAtStep",
        "+callbacks.signal.step=6",
        "+callbacks.signal.signal_name=USR1",
        "+callbacks.signal.group=true",
    ]
    rc, output = run_cli(*common, *warning)
    assert rc == 0, output[-3000:]
    assert log.read_text().split("\n")[0] == "requeue 4242"  # Lightning asked SLURM to requeue the job
    assert list(run.glob("hpc_ckpt_*.ckpt"))  # Lightning's requeue checkpoint
    assert saved_step(run / "checkpoints" / "last.ckpt") >= 6  # and ours, at the step's end (SIGTERM)
    assert "exited unexpectedly" not in output

    rc, output = run_cli(*common)  # the requeued job: same job id, same command
    assert rc == 0 and "Resuming from" in output, output[-3000:]
    assert saved_step(run / "checkpoints" / "last.ckpt") == 12


# ------------------------------------------------------------------ text that packing must cut
@pytest.mark.parametrize("streaming", [False, True])
def test_a_huge_line_without_sentence_ends_is_cut_with_a_warning(compose_pretrain, tmp_path, caplog, streaming):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    huge = " ".join(["word"] * 50_000)  # one "sentence": no . ! ? before a capital letter
    normal = "\n\n".join(f"Paragraph {i} has words. It ends here." for i in range(400))
    (corpus / "a.txt").write_text(f"{huge}\n")  # the first document: the one streaming holds out
    (corpus / "b.txt").write_text(f"{normal}\n")
    cfg = compose_pretrain(
        *FAST,
        "data=text",
        f"data.corpus.paths={corpus}",
        "data.val_documents=1",
        f"data.streaming={str(streaming).lower()}",
        "tokenizer=bert_uncased",
        "data.batch_size=1",
    )
    _, datamodule, _ = build(cfg)
    with caplog.at_level(logging.WARNING):
        datamodule.setup("fit")
    assert "1 sentence longer than a sequence (data.max_seq_length=64) was cut to fit" in caplog.text, caplog.text
    assert "tokens dropped" in caplog.text
