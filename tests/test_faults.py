"""Faults that real clusters produce, performed for real, and what must survive them: a moved or
copied run folder, a diverging loss, a full disk during a save."""

import errno
import shutil

import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from conftest import FAST
from electra_lit.errors import RunFault
from electra_lit.lit.callbacks.checkpoint import AtomicCheckpointIO
from electra_lit.runs.pretrain import train
from electra_lit.runs.resume import read_checkpoint, resume_checkpoint

SHORT = [*FAST, "trainer.val_check_interval=3", "trainer.limit_val_batches=1"]


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
    real_save, calls = TorchCheckpointIO.save_checkpoint, []

    def save(self, checkpoint, path, storage_options=None):
        calls.append(path)
        if len(calls) <= after_saves:
            return real_save(self, checkpoint, path, storage_options)
        with open(path, "wb") as file:
            file.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", save)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(monkeypatch, tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the good one")
    fill_the_disk(monkeypatch, after_saves=0)
    with pytest.raises(RunFault, match=rf"could not write the checkpoint {target}: No space left on device") as caught:
        AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(2**20)}, target)
    assert "it needs about 4 MB" in str(caught.value) and "MB are free there" in str(caught.value)
    assert target.read_bytes() == b"the good one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the temporary file is gone


@pytest.mark.slow
def test_a_run_whose_disk_fills_stops_with_its_last_checkpoint_intact(compose_pretrain, tmp_path, monkeypatch):
    fill_the_disk(monkeypatch, after_saves=1)
    with pytest.raises(RunFault, match="previous checkpoints are intact"):
        train(compose_pretrain(*SHORT, "trainer.max_steps=9"))
    run = tmp_path / "run"
    assert checkpoint_files(run) == ["last.ckpt"]
    assert saved_step(run / "checkpoints" / "last.ckpt") == 3
