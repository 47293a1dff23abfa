"""Run folders on object storage (electra_lit.runs.remote), against a real S3-compatible server on
127.0.0.1 (tests/s3_server.py): the lock, what is put and pulled, and whole runs that are killed,
resumed on a "new machine" (another cache_dir), exported and fine-tuned from there."""

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs
import torch
from hydra import compose, initialize_config_module
from test_cluster import run_cli
from test_faults import SHORT
from test_finetune import sst2_dir

from electra_lit import storage
from electra_lit.errors import ConfigError
from electra_lit.runs.remote import RemoteRunFolder, RemoteRunLock
from electra_lit.runs.run_dir import RunDir


def fs_of(s3) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(key=s3.key, secret=s3.secret, endpoint_url=s3.endpoint, skip_instance_cache=True)


def remote_step(s3, url: str) -> int:
    return torch.load(io.BytesIO(fs_of(s3).cat_file(url)), weights_only=False)["global_step"]


# ------------------------------------------------------------------ config
def test_a_url_run_dir_writes_into_a_local_mirror_under_cache_dir(tmp_path):
    with initialize_config_module("electra_lit.conf", version_base="1.3"):
        remote = compose("pretrain", overrides=["run_dir=s3://bkt/runs/a", f"cache_dir={tmp_path}"])
        local = compose("pretrain", overrides=[f"run_dir={tmp_path / 'r'}", f"cache_dir={tmp_path}"])
    mirror = str(tmp_path / "remote" / "s3" / "bkt" / "runs" / "a")
    assert remote.local_run_dir == mirror
    assert remote.trainer.default_root_dir == remote.callbacks.model_checkpoint.run_dir == mirror
    assert local.local_run_dir == local.run_dir == str(tmp_path / "r")


# ------------------------------------------------------------------ the lock
def test_the_lock_object_is_taken_once_and_a_dead_owner_is_taken_over(s3):
    url = f"{s3.bucket}/run/run.lock"
    first = RemoteRunLock(url)
    first.acquire()
    holder = json.loads(fs_of(s3).cat_file(url))
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()

    other = RemoteRunLock(url)
    other.owner = {**other.owner, "pid": 1}  # another live process of this host (pid 1 always lives)
    with pytest.raises(ConfigError, match=rf"^{s3.bucket}/run is in use by another run \(host .*, pid {os.getpid()}"):
        other.acquire()

    fs_of(s3).pipe_file(url, json.dumps({**holder, "pid": 2**22 + 12345}).encode())  # a killed run's lock
    third = RemoteRunLock(url)
    third.acquire()
    assert json.loads(fs_of(s3).cat_file(url))["pid"] == os.getpid()
    third.release()
    first.release()  # no longer its lock: left alone
    assert not fs_of(s3).exists(url)


# ------------------------------------------------------------------ put and pull
def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_save_puts_the_checkpoint_last_and_keeps_the_one_it_replaced(s3, tmp_path):
    run = RunDir(tmp_path / "mirror")
    remote = RemoteRunFolder(f"{s3.bucket}/run", run)
    write(run.metrics, "step\n0\n")
    write(run.last_checkpoint, "step 4")
    assert remote.push() == 2
    assert remote.push() == 0  # nothing changed: nothing put

    os.replace(run.last_checkpoint, run.previous_checkpoint)  # what AtomicCheckpointIO does at a save
    write(run.last_checkpoint, "step 8")
    write(run.metrics, "step\n0\n4\n")
    assert remote.push() == 3
    fs = fs_of(s3)
    assert fs.cat_file(f"{s3.bucket}/run/checkpoints/last.ckpt") == b"step 8"
    assert fs.cat_file(f"{s3.bucket}/run/checkpoints/last.previous.ckpt") == b"step 4"
    assert fs.cat_file(f"{s3.bucket}/run/metrics.csv") == b"step\n0\n4\n"


def test_a_pull_makes_the_mirror_what_the_remote_folder_holds(s3, tmp_path):
    source = RunDir(tmp_path / "first-machine")
    write(source.metrics, "step\n0\n")
    write(source.last_checkpoint, "step 4")
    write(source.root / "train.log", "first start\n")
    RemoteRunFolder(f"{s3.bucket}/run", source).push()

    run = RunDir(tmp_path / "second-machine")
    write(run.root / "train.log", "second start\n")  # what Hydra wrote there before our code ran
    write(run.checkpoints / "last-v1.ckpt", "never put")  # e.g. saved, then killed before the put
    RemoteRunFolder(f"{s3.bucket}/run", run).pull()
    assert run.metrics.read_text() == "step\n0\n" and run.last_checkpoint.read_text() == "step 4"
    assert run.resume_candidates() == [run.last_checkpoint]
    assert (run.root / "train.log").read_text() == "first start\nsecond start\n"


# ------------------------------------------------------------------ whole runs
def metric_rows(path: Path) -> dict:
    rows = csv.DictReader(open(path))
    return {(int(r["step"]), key): r[key] for r in rows for key in ("train/loss", "val/loss") if r.get(key)}


@pytest.mark.slow
def test_kill_9_then_resume_on_another_machine_continues_exactly(s3, tmp_path, monkeypatch):
    # each run starts its own W&B service, as on separate machines (not the one this test
    # process may have started: it would still hold the killed run's id)
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    common = [*SHORT, "trainer.val_check_interval=4", "trainer.log_every_n_steps=1", "trainer.max_steps=8"]
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'machine-a'}", f"run_dir={tmp_path / 'straight'}")
    assert rc == 0, output[-3000:]

    url = f"{s3.bucket}/runs/killed"
    kill_after_save = ["+callbacks.kill._target_=cluster_callbacks.KillAfterSave", "+callbacks.kill.step=4"]
    remote_run = [f"run_dir={url}", "logger=wandb"]  # W&B offline (tests), plus metrics.csv
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'machine-a'}", *remote_run, *kill_after_save)
    assert rc == -signal.SIGKILL, output[-3000:]
    assert remote_step(s3, f"{url}/checkpoints/last.ckpt") == 4
    assert fs_of(s3).exists(f"{url}/run.lock")  # left behind by the killed run
    wandb_id = fs_of(s3).cat_file(f"{url}/wandb_run_id").decode().strip()

    # another machine: an empty cache_dir, so nothing of the first start is local (not even the
    # tokenizer, which it trains again: the resumed run must go on with the checkpoint's)
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'machine-b'}", *remote_run)
    assert rc == 0, output[-3000:]
    assert fs_of(s3).cat_file(f"{url}/wandb_run_id").decode().strip() == wandb_id  # the same W&B run
    assert fs_of(s3).glob(f"{url}/wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb")  # its files, put at the end
    assert "Taking over" in output and f"checkpoint  {url}/checkpoints/last.ckpt" in output
    assert remote_step(s3, f"{url}/checkpoints/last.ckpt") == 8
    assert remote_step(s3, f"{url}/checkpoints/last.previous.ckpt") == 4
    assert not fs_of(s3).exists(f"{url}/run.lock")  # released at exit
    fs_of(s3).get_file(f"{url}/metrics.csv", str(tmp_path / "remote-metrics.csv"))
    assert metric_rows(tmp_path / "remote-metrics.csv") == metric_rows(tmp_path / "straight" / "metrics.csv")


@pytest.mark.slow
def test_export_to_and_finetune_from_object_storage(s3, tmp_path, tiny_checkpoint):
    storage.upload(tiny_checkpoint, f"{s3.bucket}/pretrain/last.ckpt")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(
        [str(bin_dir / "electra-export"), f"{s3.bucket}/pretrain/last.ckpt", f"{s3.bucket}/export"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {s3.bucket}/export/discriminator" in done.stdout
    assert fs_of(s3).exists(f"{s3.bucket}/export/discriminator/config.json")

    data = sst2_dir(tmp_path / "sst2", n_train=32, n_dev=16, n_test=0)
    for init_from in (f"{s3.bucket}/export/discriminator", f"{s3.bucket}/pretrain/last.ckpt"):
        name = init_from.rsplit("/", 1)[1]
        done = subprocess.run(
            [
                str(bin_dir / "electra-finetune"),
                "task=sst2",
                f"task.data_dir={data}",
                f"init_from={init_from}",
                f"run_dir={s3.bucket}/finetune/{name}",
                f"cache_dir={tmp_path / 'cache'}",
                "task.epochs=1",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        results = json.loads(fs_of(s3).cat_file(f"{s3.bucket}/finetune/{name}/results.json"))
        assert results["task"] == "sst2" and "accuracy" in results["metrics"]
        assert fs_of(s3).exists(f"{s3.bucket}/finetune/{name}/checkpoints/best.ckpt")


@pytest.mark.parametrize(
    "run_dir, env, cause",
    [
        ("s3://no-such-bucket/run", {}, "the bucket no-such-bucket does not exist"),
        ("BUCKET/run", {"AWS_SECRET_ACCESS_KEY": "wrong"}, "access refused, check the credentials"),
        ("BUCKET/run", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach the endpoint"),
    ],
    ids=["missing bucket", "wrong credentials", "unreachable endpoint"],
)
def test_a_run_dir_that_cannot_be_used_is_one_line_before_training(s3, tmp_path, run_dir, env, cause):
    run_dir = run_dir.replace("BUCKET", s3.bucket)
    done = subprocess.run(
        [sys.executable, "-m", "electra_lit.cli.pretrain", f"run_dir={run_dir}", f"cache_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == f"electra-pretrain: error: run_dir={run_dir}: {cause}" or (
        done.stderr.strip().startswith(f"electra-pretrain: error: run_dir={run_dir}: {cause}")
        and done.stderr.strip().count("\n") == 0
    ), done.stderr


@pytest.mark.slow
def test_the_whole_cloud_workflow_on_s3(s3, tmp_path):
    """The issue's end to end, every path on the store: prepare shards to s3://, pretrain from them
    with run_dir on s3://, kill -9, resume on another machine exactly, export to s3://, fine-tune
    with init_from from s3://."""
    from test_storage_data import PREPARE

    shards = f"{s3.bucket}/books-64"
    done = subprocess.run(
        [sys.executable, "-m", "electra_lit.cli.prepare_data", *PREPARE, f"out_dir={shards}", f"cache_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert fs_of(s3).exists(f"{shards}/meta.json") and fs_of(s3).exists(f"{shards}/tokenizer/tokenizer.json")

    data = ["data=shards", f"data.shards={shards}", "tokenizer=pretrained", f"tokenizer.path={shards}/tokenizer"]
    common = [*SHORT, *data, "trainer.val_check_interval=4", "trainer.log_every_n_steps=1", "trainer.max_steps=8"]
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'straight-cache'}", f"run_dir={tmp_path / 'straight'}")
    assert rc == 0, output[-3000:]

    url = f"{s3.bucket}/runs/electra"
    kill_after_save = ["+callbacks.kill._target_=cluster_callbacks.KillAfterSave", "+callbacks.kill.step=4"]
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'machine-a'}", f"run_dir={url}", *kill_after_save)
    assert rc == -signal.SIGKILL and remote_step(s3, f"{url}/checkpoints/last.ckpt") == 4, output[-3000:]
    rc, output = run_cli(*common, f"cache_dir={tmp_path / 'machine-b'}", f"run_dir={url}")
    assert rc == 0 and remote_step(s3, f"{url}/checkpoints/last.ckpt") == 8, output[-3000:]
    fs_of(s3).get_file(f"{url}/metrics.csv", str(tmp_path / "remote-metrics.csv"))
    assert metric_rows(tmp_path / "remote-metrics.csv") == metric_rows(tmp_path / "straight" / "metrics.csv")

    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bin_dir / "electra-export"), f"{url}/checkpoints/last.ckpt", f"{s3.bucket}/export"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    task = sst2_dir(tmp_path / "sst2", n_train=32, n_dev=16, n_test=0)
    done = subprocess.run(
        [
            str(bin_dir / "electra-finetune"),
            "task=sst2",
            f"task.data_dir={task}",
            f"init_from={s3.bucket}/export/discriminator",
            f"run_dir={s3.bucket}/finetune/sst2",
            f"cache_dir={tmp_path / 'machine-c'}",
            "task.epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(fs_of(s3).cat_file(f"{s3.bucket}/finetune/sst2/results.json"))["task"] == "sst2"
