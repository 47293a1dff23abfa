"""A run folder on object storage: ``run_dir=s3://bucket/runs/x`` (or ``gs://``, any fsspec URL).

The run works in a local mirror of the folder (``local_run_dir`` in the config, under
``cache_dir``/remote/), where Lightning, the loggers and the checkpoint callback write exactly as
they do in a local run folder; the remote folder is the one that counts:

- before anything is read, rank 0 takes the run's lock there (``run.lock``: created only if absent,
  with a conditional put where the store has one, S3 and GCS do; owner and age as for a local lock,
  :class:`electra_lit.runs.lock.RunLock`), and every process pulls the folder into its mirror:
  config, tokenizer, metrics.csv, the W&B run id and the checkpoints, so that resuming, W&B id reuse
  and dropping metrics rows logged after the checkpoint work as they do locally. A checkpoint in
  the mirror that the remote folder lacks (a kill between the local save and its put) is removed:
  a run never resumes from a state the remote folder does not hold;
- after each checkpoint save, rank 0 puts the changed files (metrics.csv and the rest first, the
  checkpoint last); ``last.ckpt`` is put whole (a reader never sees part of it) after the one it
  replaces was copied, within the store, to ``last.previous.ckpt``;
- at the end of the run, everything, W&B's offline files and fine-tuning's results included.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from electra_lit import storage
from electra_lit.runs.lock import RunLock, is_launch_rank_zero
from electra_lit.runs.run_dir import RunDir

log = logging.getLogger(__name__)

NOT_PULLED = ("wandb/", ".hydra/")  # W&B's own files and Hydra's copy of this start's config
LOG = "train.log"  # Hydra's job log: the remote one is put in front of this start's lines


class RemoteRunLock(RunLock):
    """:class:`RunLock` kept as an object beside the remote run folder's files."""

    def __init__(self, url: str, stale_minutes: float = 10.0):
        super().__init__("run.lock", stale_minutes)
        self.path = url  # named in messages
        self.folder = url.rsplit("/", 1)[0]
        self.fs, self.remote = storage.filesystem(url, "run_dir")

    def _prepare(self) -> None:
        pass  # object stores have no folders to make

    def _create(self) -> bool:
        body = json.dumps(self.owner).encode()
        try:
            with self.fs.open(self.remote, "xb") as file:  # S3 If-None-Match, GCS if-generation-match=0
                file.write(body)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):  # no exclusive create here: look, then put, then look again
            if self.fs.exists(self.remote):
                return False
            self.fs.pipe_file(self.remote, body)
            return self._mine(self._read() or {})

    def _write(self) -> None:
        self.fs.pipe_file(self.remote, json.dumps(self.owner).encode())

    def _read(self) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.remote))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _age_minutes(self) -> float | None:
        try:
            return (time.time() - self.fs.modified(self.remote).timestamp()) / 60
        except (FileNotFoundError, NotImplementedError):
            return None

    def _touch(self) -> None:
        self._write()  # a new put: the object's modification time is now

    def _remove(self) -> None:
        try:
            self.fs.rm_file(self.remote)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        """As :meth:`RunLock.release`; at exit the store may be gone already: the lock then ages out."""
        try:
            super().release()
        except Exception as err:
            log.warning("Could not release %s (%s); it is taken over once stale", self.path, type(err).__name__)


class RemoteRunFolder:
    """The remote side of a run folder whose local side is ``run`` (see the module's docstring)."""

    def __init__(self, url: str, run: RunDir):
        self.url = url.rstrip("/")
        self.run = run
        self._put: dict[str, tuple[int, int]] = {}  # relative path -> (mtime_ns, size) last put

    @classmethod
    def of(cls, cfg: DictConfig) -> RemoteRunFolder | None:
        """The remote folder of ``cfg.run_dir``, None for a local run folder."""
        return cls(cfg.run_dir, RunDir(cfg.local_run_dir)) if storage.is_remote(cfg.run_dir) else None

    def url_of(self, relative: str | Path) -> str:
        return storage.join(self.url, Path(relative).as_posix())

    def lock(self, stale_minutes: float) -> None:
        RemoteRunLock(self.url_of(self.run.lock.name), stale_minutes).acquire()

    # ------------------------------------------------------------ remote -> mirror
    def pull(self) -> None:
        """Make the mirror hold what the remote folder holds (see the module's docstring)."""
        root = self.run.root
        root.mkdir(parents=True, exist_ok=True)
        remote = storage.list_files(self.url)
        for relative, info in remote.items():
            if relative.startswith(NOT_PULLED) or relative == self.run.lock.name:
                continue
            if relative == LOG:
                self._prepend_log(relative)
                continue
            storage.fetch_file(self.url_of(relative), info, root / relative)
            self._remember(relative)
        for path in self.run.resume_candidates():
            if path.relative_to(root).as_posix() not in remote:
                log.info("%s was never put in %s: not resuming from it", path, self.url)
                storage.remove_local(path)
        if remote:
            log.info("Pulled %s into %s", self.url, root)

    def _prepend_log(self, relative: str) -> None:
        """Earlier starts' log lines before this start's, in the file Hydra's handler appends to."""
        local = self.run.root / relative
        copy = storage.download(self.url_of(relative), local.with_name(f".{local.name}.remote"))
        earlier, mine = copy.read_bytes(), local.read_bytes() if local.is_file() else b""
        copy.unlink()
        if mine.startswith(earlier):  # this machine's mirror has them already
            return
        with open(local, "r+b" if local.is_file() else "wb") as file:  # the same file: the handler appends to it
            file.write(earlier + mine)

    # ------------------------------------------------------------ mirror -> remote
    def push(self, final: bool = False) -> int:
        """Put the mirror's changed files: everything but checkpoints first, then the checkpoints
        (``final``: W&B's files too). Returns how many files were put."""
        root = self.run.root
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") or _hydra(p, root))
        checkpoints = {p for p in files if p.suffix == ".ckpt"}
        put = 0
        for path in [p for p in files if p not in checkpoints] + self._checkpoint_order(checkpoints):
            relative = path.relative_to(root).as_posix()
            if relative == self.run.lock.name or (relative.startswith("wandb/") and not final):
                continue
            if self._changed(relative, path):
                self._put_one(relative, path)
                put += 1
        return put

    def _checkpoint_order(self, checkpoints: set[Path]) -> list[Path]:
        """The previous checkpoint before the one that replaced it."""
        last = self.run.last_checkpoint
        return sorted(checkpoints - {last}) + ([last] if last in checkpoints else [])

    def _put_one(self, relative: str, path: Path) -> None:
        previous = self.run.previous_checkpoint
        last = self.run.last_checkpoint.relative_to(self.run.root).as_posix()
        if path == previous and self._put.get(last) == _stat(path):
            # the file that last.ckpt was when it was put (a rename keeps the time): copied within
            # the store, not uploaded again
            storage.copy(self.url_of(last), self.url_of(relative))
        else:
            storage.upload(path, self.url_of(relative))
        self._remember(relative)

    def _changed(self, relative: str, path: Path) -> bool:
        return self._put.get(relative) != _stat(path)

    def _remember(self, relative: str) -> None:
        path = self.run.root / relative
        if path.is_file():
            self._put[relative] = _stat(path)


def open_remote(cfg: DictConfig) -> RemoteRunFolder | None:
    """For a URL ``run_dir``, before anything reads the run folder: check that it can be used (one
    line naming the cause otherwise), take its lock (rank 0) and pull it into the local mirror.
    None for a local run folder."""
    remote = RemoteRunFolder.of(cfg)
    if remote is None:
        return None
    storage.check_url(cfg.run_dir, "run_dir", must_exist=False)
    if is_launch_rank_zero():
        remote.lock(cfg.run_lock_stale_minutes)
    remote.pull()
    return remote


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _hydra(path: Path, root: Path) -> bool:
    return path.is_file() and path.relative_to(root).parts[0] == ".hydra"
