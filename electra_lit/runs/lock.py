"""One live run per run folder: a lock file taken before the run writes anything.

Two runs on one folder (a command started twice, a sweep job and its requeued copy racing) would
interleave metrics.csv rows and overwrite each other's checkpoints. The first run to start
creates ``run.lock`` (``RunDir.lock``) atomically, holding its host, pid, start time and SLURM job;
a second run finds it and stops with one line naming the owner.

A lock whose owner is gone is taken over, with a warning:

- same host, and no process with the owner's pid (killed, crashed, the machine rebooted);
- the same SLURM job id (a requeued job restarting on the same or another node);
- any host, when the lock has not been touched for ``stale_minutes``: a live run touches it every
  ``stale_minutes / 4`` (shared filesystems, where another host's pid cannot be checked).

Only global rank 0 takes the lock (the other ranks of a job are the same run). The lock is
released when the process exits; one process may take its own lock again (a second run of the
same folder from a notebook or a test).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)

RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")  # set by launchers for every process


def is_launch_rank_zero() -> bool:
    """Whether this process is global rank 0 of its job, before torch.distributed starts."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    """The lock of one run folder. ``acquire()`` takes it or raises :class:`ConfigError`."""

    def __init__(self, path: str | os.PathLike, stale_minutes: float = 10.0):
        if stale_minutes <= 0:
            raise ConfigError(f"run_lock_stale_minutes={stale_minutes} must be > 0")
        self.path = Path(path)
        self.folder = str(self.path.parent)  # named in messages
        self.stale_minutes = stale_minutes
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
        }
        self._stop = threading.Event()

    def acquire(self) -> None:
        self._prepare()
        if not self._create():
            self._take_over(self._holder())
        atexit.register(self.release)
        threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True).start()

    def _holder(self) -> dict:
        """The lock's contents; a lock that stays unreadable for a second (its writer was killed
        while writing it) counts as held by nobody."""
        for _ in range(10):
            holder = self._read()
            if holder is not None:
                return holder
            time.sleep(0.1)
        return {}

    def _take_over(self, holder: dict) -> None:
        if self._mine(holder):
            return  # this process again
        reason = self._stale(holder) if holder else "unreadable"
        if reason is None:
            raise ConfigError(
                f"{self.folder} is in use by another run (host {holder.get('host')}, pid "
                f"{holder.get('pid')}, started {holder.get('started')}); wait for it, stop it, or give "
                f"this run another run_dir (if that run is dead, remove {self.path})"
            )
        log.warning("Taking over %s from host %s pid %s: %s", self.path, holder.get("host"), holder.get("pid"), reason)
        self._write()
        if not self._mine(self._holder()):  # another run took it over at the same moment
            raise ConfigError(f"{self.folder} was just taken by another run; give this run another run_dir")

    def release(self) -> None:
        """Remove the lock if it is still this process's (once: later calls, at exit, do nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        holder = self._read()
        if holder is not None and self._mine(holder):
            self._remove()

    # ------------------------------------------------------------ internals: the lock file
    # (a subclass keeps the lock elsewhere: electra_lit.runs.remote.RemoteRunLock on object storage)
    def _prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _touch(self) -> None:
        os.utime(self.path)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as file:
            json.dump(self.owner, file)
        return True

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.owner))
        os.replace(tmp, self.path)

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _age_minutes(self) -> float | None:
        try:
            return (time.time() - self.path.stat().st_mtime) / 60
        except FileNotFoundError:
            return None

    def _mine(self, holder: dict) -> bool:
        return holder.get("host") == self.owner["host"] and holder.get("pid") == self.owner["pid"]

    def _stale(self, holder: dict) -> str | None:
        """Why the holder is gone, or None while it may be alive."""
        if holder.get("host") == self.owner["host"] and not _pid_alive(int(holder.get("pid", -1))):
            return "that process no longer exists"
        if holder.get("slurm_job") and holder.get("slurm_job") == self.owner["slurm_job"]:
            return f"the same SLURM job ({holder['slurm_job']}), requeued"
        age = self._age_minutes()
        if age is not None and age > self.stale_minutes:
            return f"not touched for {age:.0f} minutes (run_lock_stale_minutes={self.stale_minutes:g})"
        return None

    def _heartbeat(self) -> None:
        while not self._stop.wait(60 * self.stale_minutes / 4):
            holder = self._read()
            if holder is None or not self._mine(holder):
                return
            try:
                self._touch()
            except OSError:
                return
